// Decoded + augmented images per second from the data pipeline: JPEG decoding (256x256
// colour sources encoded at start-up with libjpeg) and Fashion-MNIST (28x28 uint8) through
// the SimCLR and chest X-ray presets to 64x64 and 224x224 views, with the pair strategy
// and the prefetch loader on W worker threads. img/s counts views (2 per pair).
#include <benchmark/benchmark.h>
#include <jpeglib.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "micle/contrastive/pairs.hpp"
#include "micle/data/decode.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/loader.hpp"

namespace {

std::vector<std::uint8_t> encode_jpeg(int w, int h, std::uint64_t seed) {
    micle::rng gen(seed);
    std::vector<std::uint8_t> rgb(std::size_t(w * h * 3));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                rgb[std::size_t((y * w + x) * 3 + c)] = std::uint8_t((x * (c + 1) + y * 3 + int(gen.below(32))) & 255);
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    unsigned char* out = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &out, &size);
    cinfo.image_width = JDIMENSION(w);
    cinfo.image_height = JDIMENSION(h);
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = rgb.data() + std::size_t(cinfo.next_scanline) * std::size_t(w * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::vector<std::uint8_t> bytes(out, out + size);
    std::free(out);
    return bytes;
}

micle::data::dataset jpeg_dataset(int count) {
    micle::data::dataset d;
    d.source = "in-memory JPEGs";
    d.num_classes = 2;
    auto files = std::make_shared<std::vector<std::vector<std::uint8_t>>>();
    for (int i = 0; i < count; ++i) {
        files->push_back(encode_jpeg(256, 256, std::uint64_t(i)));
        d.labels.push_back(i % 2);
        d.patients.push_back(i);
        d.names.push_back("jpeg " + std::to_string(i));
    }
    d.decode = [files](std::int64_t i) {
        const auto& f = (*files)[std::size_t(i)];
        return micle::data::decode_jpeg(f.data(), f.size(), "bench.jpg");
    };
    return d;
}

void run(benchmark::State& state, const micle::data::dataset& d, const micle::data::augment_config& aug, std::int64_t channels) {
    const int workers = int(state.range(0));
    constexpr std::int64_t n = 32;
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

void BM_jpeg256_simclr(benchmark::State& state, std::int64_t size) {
    static const auto d = jpeg_dataset(128);
    run(state, d, micle::data::augment_config::simclr(size), 3);
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

}  // namespace

BENCHMARK_CAPTURE(BM_jpeg256_simclr, to64, 64)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_jpeg256_simclr, to224, 224)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_fashion28_chest_xray, to64, 64)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_fashion28_chest_xray, to224, 224)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
