// Augmented views per second from the data pipeline - the pair strategy and the prefetch
// loader on W worker threads, decoding each image once per pair - as train::fit runs it.
// img/s counts views (2 per pair).
//
//   bench_loader                      Fashion-MNIST (28x28 uint8 in memory) to 64 and 224 px
//   bench_loader --data=FILE [--preset=chest_xray|simclr] [--size=224] [--workers=1,2]
//                                     a CSV manifest's images, or a prepared dataset's
//                                     (bench/compare_loader.py runs this next to
//                                     torchvision on the same files)
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "micle/contrastive/pairs.hpp"
#include "micle/core/malloc.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/loader.hpp"
#include "micle/data/open.hpp"

namespace {

void run(benchmark::State& state, const micle::data::dataset& d, const micle::data::augment_config& aug, std::int64_t channels) {
    const int workers = int(state.range(0));
    // 32 pairs per batch, or enough batches for every worker on a small manifest
    const std::int64_t n = std::max<std::int64_t>(1, std::min<std::int64_t>(32, d.size() / (2 * workers)));
    micle::contrastive::augmented_views pairs(d, aug, channels, 1);
    const std::int64_t batches = pairs.units() / n;
    std::int64_t views = 0, epoch = 0;
    for (auto _ : state) {
        micle::data::prefetch_loader<micle::contrastive::view_batch> loader(
            [&](std::int64_t b) { return pairs.make_batch(epoch, b, n); }, batches, workers, 2 * workers);
        while (auto batch = loader.next()) {
            benchmark::DoNotOptimize(batch->pixels.data());
            views += 2 * n;
        }
        ++epoch;
    }
    state.counters["img/s"] = benchmark::Counter(double(views), benchmark::Counter::kIsRate);
}

void BM_fashion28_chest_xray(benchmark::State& state, std::int64_t size) {
    if (!std::filesystem::exists(micle::data::fashion_mnist_dir)) {
        state.SkipWithError("dataset-fashion-mnist is not installed");
        return;
    }
    static const auto full = micle::data::read_idx_dataset(micle::data::fashion_mnist_dir, "test");
    std::vector<std::int64_t> first(1024);
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = std::int64_t(i);
    static const auto d = full.subset(first);
    run(state, d, micle::data::augment_config::chest_xray(size), 1);
}

/// The value of --name=VALUE in argv (removed from it), or `fallback`.
std::string take_flag(int& argc, char** argv, const std::string& name, const std::string& fallback) {
    const std::string prefix = "--" + name + "=";
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
            std::string v = argv[i] + prefix.size();
            for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
            --argc;
            return v;
        }
    return fallback;
}

}  // namespace

int main(int argc, char** argv) {
    micle::keep_large_blocks();  // as train::fit and the micle CLI do (core/malloc.hpp)
    const std::string manifest = take_flag(argc, argv, "data", "");
    const std::string preset = take_flag(argc, argv, "preset", "chest_xray");
    const std::int64_t size = std::stoll(take_flag(argc, argv, "size", "224"));
    const std::string workers = take_flag(argc, argv, "workers", "1,2");
    std::vector<int> counts;
    std::stringstream list(workers);
    for (std::string w; std::getline(list, w, ',');) counts.push_back(std::stoi(w));
    static micle::data::dataset images;
    if (manifest.empty()) {
        for (std::int64_t out : {64, 224}) {
            auto* b = benchmark::RegisterBenchmark(("fashion28_chest_xray/to" + std::to_string(out)).c_str(),
                                                   [out](benchmark::State& st) { BM_fashion28_chest_xray(st, out); });
            for (int w : counts) b->Arg(w);
            b->UseRealTime()->Unit(benchmark::kMillisecond);
        }
    } else {
        images = micle::data::open_all(manifest);  // a CSV manifest, a prepared file, ...
        const auto aug = preset == "simclr" ? micle::data::augment_config::simclr(size) : micle::data::augment_config::chest_xray(size);
        const std::int64_t channels = images.load_source(0).channels;
        auto* b = benchmark::RegisterBenchmark((std::filesystem::path(manifest).stem().string() + "/" + preset).c_str(),
                                               [aug, channels](benchmark::State& st) { run(st, images, aug, channels); });
        for (int w : counts) b->Arg(w);
        b->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
