#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "micle/models/resnet.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/evaluation.hpp"
#include "testing.hpp"

using namespace micle;
namespace fs = std::filesystem;

namespace {
using R = reference;

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() / ("micle-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        fs::create_directories(path);
    }
    ~temp_dir() { fs::remove_all(path); }
    static int& counter() {
        static int c = 0;
        return c;
    }
};

models::resnet_config tiny(std::int64_t in_channels = 3) {
    models::resnet_config c;
    c.depth = 18;
    c.base_channels = 2;
    c.stem = models::stem_kind::small;
    c.in_channels = in_channels;
    c.num_classes = 3;
    return c;
}

/// Runs `f` with writes limited to `bytes` per file (EFBIG past it, as a full disk gives
/// ENOSPC), SIGXFSZ ignored; restores both afterwards.
template <class F>
void with_file_size_limit(rlim_t bytes, F&& f) {
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    try {
        f();
    } catch (...) {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
        throw;
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
}

std::string bytes_of(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("checkpoint: weights, running statistics and counters round-trip exactly") {
    temp_dir dir;
    context<R> ctx;
    models::resnet<R> a(ctx, tiny(), 1), b(ctx, tiny(), 2);
    const auto x = tensor<R>::from_host(ctx, {2, 3, 8, 8}, testing::random_values(384, 3));
    a.forward(ctx, x, true);  // moves running statistics and num_batches_tracked
    a.forward(ctx, x, true);
    train::save_weights(dir.path / "a.safetensors", ctx, a.state(), {{"arch", "resnet18"}});
    auto sb = b.state();
    const auto report = train::load_weights(dir.path / "a.safetensors", ctx, sb);
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
    CHECK(b.forward(ctx, x, false).to_host(ctx) == a.forward(ctx, x, false).to_host(ctx));
    for (auto* c : sb.counters) CHECK(c->value == 2);
    CHECK(safetensors::reader(dir.path / "a.safetensors").metadata().at("arch") == "resnet18");
}

TEST_CASE("checkpoint: damaged and mismatched files give errors naming file and tensor, and change nothing") {
    temp_dir dir;
    context<R> ctx;
    models::resnet<R> a(ctx, tiny(), 1);
    const auto good = dir.path / "good.safetensors";
    train::save_weights(good, ctx, a.state());
    const std::string bytes = bytes_of(good);

    models::resnet<R> b(ctx, tiny(), 2);
    auto sb = b.state();
    const auto before = sb.params[0]->value.to_host(ctx);

    SUBCASE("truncated") {
        const auto p = dir.path / "truncated.safetensors";
        std::ofstream(p, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
        CHECK_THROWS_WITH_AS(train::load_weights(p, ctx, sb), doctest::Contains("truncated.safetensors"), safetensors::io_error);
        CHECK_THROWS_WITH_AS(train::load_weights(p, ctx, sb), doctest::Contains("outside the"), safetensors::io_error);
    }
    SUBCASE("too short for a header") {
        const auto p = dir.path / "short.safetensors";
        std::ofstream(p, std::ios::binary) << "abc";
        CHECK_THROWS_WITH_AS(train::load_weights(p, ctx, sb), doctest::Contains("shorter than the 8-byte header"),
                             safetensors::io_error);
    }
    SUBCASE("corrupt header") {
        std::string broken = bytes;
        broken[8] = '#';  // the header's opening brace
        const auto p = dir.path / "corrupt.safetensors";
        std::ofstream(p, std::ios::binary) << broken;
        CHECK_THROWS_WITH_AS(train::load_weights(p, ctx, sb), doctest::Contains("not valid JSON"), safetensors::io_error);
    }
    SUBCASE("missing file") {
        CHECK_THROWS_WITH_AS(train::load_weights(dir.path / "nope.safetensors", ctx, sb),
                             doctest::Contains("cannot open"), safetensors::io_error);
    }
    SUBCASE("other architecture") {
        auto cfg = tiny();
        cfg.num_classes = 5;
        models::resnet<R> c(ctx, cfg, 3);
        auto sc = c.state();
        CHECK_THROWS_WITH_AS(train::load_weights(good, ctx, sc),
                             doctest::Contains("tensor 'fc.weight' has shape [3, 16] but the model's is [5, 16]"),
                             safetensors::io_error);
    }
    SUBCASE("strict and non-strict") {
        auto cfg = tiny();
        cfg.num_classes = 0;  // a backbone without the classifier
        models::resnet<R> c(ctx, cfg, 3);
        auto sc = c.state();
        CHECK_THROWS_WITH_AS(train::load_weights(good, ctx, sc),
                             doctest::Contains("2 file tensors are not in the model (first: 'fc.bias')"),
                             safetensors::io_error);
        const auto report = train::load_weights(good, ctx, sc, {false, true});
        CHECK(report.unexpected == std::vector<std::string>{"fc.bias", "fc.weight"});
        CHECK(report.missing.empty());
    }
    CHECK(sb.params[0]->value.to_host(ctx) == before);
}

TEST_CASE("checkpoint: a 3-channel conv1 loads into a 1-channel model summed over channels") {
    temp_dir dir;
    context<R> ctx;
    models::resnet<R> rgb(ctx, tiny(3), 1);
    models::resnet<R> gray(ctx, tiny(1), 2);
    train::save_weights(dir.path / "rgb.safetensors", ctx, rgb.state());
    auto sg = gray.state();
    const auto report = train::load_weights(dir.path / "rgb.safetensors", ctx, sg);
    REQUIRE(report.notes.size() == 1);
    CHECK(report.notes[0].find("summed over its 3 input channels") != std::string::npos);
    // A gray image replicated to 3 channels gives the same output through both models.
    const auto g = testing::random_values(2 * 64, 4);
    std::vector<float> g3;
    for (int n = 0; n < 2; ++n)
        for (int c = 0; c < 3; ++c) g3.insert(g3.end(), g.begin() + n * 64, g.begin() + (n + 1) * 64);
    testing::expect_close(gray.forward(ctx, tensor<R>::from_host(ctx, {2, 1, 8, 8}, g), false).to_host(ctx),
                          rgb.forward(ctx, tensor<R>::from_host(ctx, {2, 3, 8, 8}, g3), false).to_host(ctx), 1e-5, 1e-6,
                          "logits");
}

TEST_CASE("checkpoint: a save that fails part-way (file size limit) keeps the previous file") {
    temp_dir dir;
    context<R> ctx;
    models::resnet<R> a(ctx, tiny(), 1), b(ctx, tiny(), 2);
    const auto path = dir.path / "latest.safetensors";
    train::save_weights(path, ctx, a.state());
    const std::string before = bytes_of(path);

    std::string message;
    with_file_size_limit(4096, [&] {
        try {
            train::save_weights(path, ctx, b.state());
        } catch (const safetensors::io_error& e) {
            message = e.what();
        }
    });

    CHECK(message.find("writing") != std::string::npos);
    CHECK(message.find("latest.safetensors") != std::string::npos);
    CHECK(bytes_of(path) == before);
    int files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
    CHECK(files == 1);  // no temporary file left behind
}

TEST_CASE("write_file_atomically: arrays, reports and pointer files are written whole or not at all") {
    temp_dir dir;
    const auto count_files = [&] {
        int files = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
        return files;
    };
    const std::string big(10000, 'x');
    SUBCASE("the helper: a failed write names the file and the step, keeps the old file, leaves no temporary") {
        const auto path = dir.path / "a.txt";
        write_file_atomically(path, "old\n", "test");
        CHECK(bytes_of(path) == "old\n");
        std::string message;
        with_file_size_limit(4096, [&] {
            try {
                const std::span<const char> parts[] = {{big.data(), 3000}, {big.data(), 7000}};
                write_file_atomically(path, parts, "test");
            } catch (const error& e) {
                message = e.what();
            }
        });
        CHECK(message.find("test: writing") != std::string::npos);
        CHECK(message.find("a.txt") != std::string::npos);
        CHECK(message.find("unchanged") != std::string::npos);
        CHECK(bytes_of(path) == "old\n");
        CHECK(count_files() == 1);
        const std::span<const char> parts[] = {{big.data(), 3000}, {big.data(), 7000}};
        write_file_atomically(path, parts, "test");  // all parts, in order, once there is room
        CHECK(bytes_of(path) == big);
        CHECK_THROWS_WITH_AS(write_file_atomically(dir.path / "no" / "such" / "dir.txt", "x", "test"),
                             doctest::Contains("cannot create"), error);
    }
    SUBCASE("write_npy and write_json on a full disk throw data_error and keep what was there") {
        const auto npy = dir.path / "f.npy", report = dir.path / "r.json";
        const std::vector<float> small(4, 1.0f), large(4000, 2.0f);
        data::write_npy(npy, "<f4", {2, 2}, std::as_bytes(std::span(small)));
        train::write_json(report, {{"accuracy", 0.5}});
        const auto npy_before = bytes_of(npy), report_before = bytes_of(report);
        with_file_size_limit(4096, [&] {
            CHECK_THROWS_WITH_AS(data::write_npy(npy, "<f4", {4000}, std::as_bytes(std::span(large))),
                                 doctest::Contains("f.npy"), data::data_error);
            CHECK_THROWS_AS(train::write_json(report, {{"big", big}}), data::data_error);
        });
        CHECK(bytes_of(npy) == npy_before);
        CHECK(bytes_of(report) == report_before);
        CHECK(count_files() == 2);
    }
}

TEST_CASE("training checkpoints: 'latest' always names a complete checkpoint, even when a save fails") {
    temp_dir dir;
    context<R> ctx;
    models::resnet<R> a(ctx, tiny(), 1);
    std::vector<float> moments(7, 0.5f);
    const std::vector<optim::state_entry> opt{optim::state_entry::host("optim.momentum.x", moments)};
    train::save_checkpoint(dir.path, train::checkpoint_name(1), ctx, a.state(), opt, {{"epoch", "1"}});
    CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000001");

    // The second save runs out of space part-way: latest still names checkpoint 1.
    bool failed = false;
    with_file_size_limit(4096, [&] {
        try {
            train::save_checkpoint(dir.path, train::checkpoint_name(2), ctx, a.state(), opt, {{"epoch", "2"}});
        } catch (const safetensors::io_error&) {
            failed = true;
        }
    });
    CHECK(failed);
    const auto latest = train::latest_checkpoint(dir.path);
    CHECK(latest.filename() == "ckpt-000001");

    // It loads, model and optimizer buffers alike.
    models::resnet<R> b(ctx, tiny(), 2);
    auto sb = b.state();
    std::vector<float> restored(7, 0.0f);
    const auto meta = train::load_checkpoint(latest, ctx, sb, {optim::state_entry::host("optim.momentum.x", restored)});
    CHECK(meta.at("epoch") == "1");
    CHECK(restored == moments);
    const auto x = tensor<R>::from_host(ctx, {1, 3, 8, 8}, testing::random_values(192, 9));
    CHECK(b.forward(ctx, x, false).to_host(ctx) == a.forward(ctx, x, false).to_host(ctx));

    // A later successful save moves latest; pruning to one removes the older checkpoints
    // (and what the failed save left).
    train::save_checkpoint(dir.path, train::checkpoint_name(3), ctx, a.state(), opt, {{"epoch", "3"}});
    CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000003");
    train::prune_checkpoints(dir.path, 1);
    CHECK_FALSE(fs::exists(dir.path / "ckpt-000001"));
    CHECK_FALSE(fs::exists(dir.path / "ckpt-000002"));
    CHECK_THROWS_WITH_AS(train::latest_checkpoint(dir.path / "nothing"), doctest::Contains("no checkpoint in"),
                         safetensors::io_error);
}
