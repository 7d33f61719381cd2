// micle::train::fit: resume from any checkpoint (epoch ends and mid-epoch steps), keep-last
// and best, callbacks that stop training, and the kNN monitor against brute force.
#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include "knn_oracle.hpp"
#include "learners.hpp"
#include "run_fixtures.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/labeled.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/knn.hpp"
#include "micle/train/signals.hpp"

using namespace micle;
namespace fs = std::filesystem;
using testing::brute_force_knn;
using testing::simclr_lars;
using testing::tiny_config;
using testing::temp_dir;
using testing::tiny_images;

namespace {
contrastive::augmented_views tiny_pairs(const data::dataset& images) {
    return contrastive::augmented_views(images, data::augment_config::simclr(8), 1, 5);
}

/// The reference backend, the tiny images and their SimCLR pairs.
struct tiny_run {
    context<reference> ctx;
    data::dataset images = tiny_images();
    contrastive::augmented_views pairs = tiny_pairs(images);
};

template <class B>
auto tiny_learner_config() {
    auto cfg = tiny_config<simclr_lars<B>>();
    cfg.backbone.in_channels = 1;
    return cfg;
}

train::fit_options tiny_fit(const fs::path& dir) {
    train::fit_options o;
    o.epochs = 2;
    o.batch = 4;  // 3 steps per epoch
    o.lr = 0.5f;
    o.run_dir = dir;
    o.workers = 2;
    return o;
}

template <class B>
std::vector<std::vector<float>> weights(simclr_lars<B>& l) {
    std::vector<std::vector<float>> out;
    auto s = l.state();
    for (auto* p : s.params) out.push_back(p->value.to_host(l.ctx()));
    for (auto* b : s.buffers) out.push_back(b->value.to_host(l.ctx()));
    return out;
}
}  // namespace

TEST_CASE_TEMPLATE("fit: resuming from any checkpoint, mid-epoch ones included, ends where an uninterrupted run ends", B,
                   MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    const auto images = tiny_images();
    const auto pairs = tiny_pairs(images);
    temp_dir straight_dir;
    auto opt = tiny_fit(straight_dir.path);
    opt.checkpoint_every = 1;  // a checkpoint after every step
    opt.keep_last = 100;       // all kept
    simclr_lars<B> straight(ctx, tiny_learner_config<B>());
    const auto r = train::fit(straight, pairs, opt);
    CHECK(r.steps_done == 6);
    CHECK(r.epochs_done == 2);
    CHECK_FALSE(r.stopped_early);
    const auto want = weights(straight);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(straight_dir.path))
        if (e.path().filename().string().rfind("ckpt-", 0) == 0) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    // Epoch ends and steps: after 1, 2 batches of epoch 1, epoch 1, 1 and 2 batches into epoch 2, epoch 2.
    CHECK(names == std::vector<std::string>{"ckpt-000000-b000001", "ckpt-000000-b000002", "ckpt-000001", "ckpt-000001-b000001",
                                            "ckpt-000001-b000002", "ckpt-000002"});
    // The reference backend is exact; oneDNN may pick other kernels for the first step of
    // a fresh learner than for later steps, so it gets a tolerance.
    const double tol = std::is_same_v<B, reference> ? 0.0 : 1e-5;
    for (std::size_t k = 0; k + 1 < names.size(); ++k) {
        CAPTURE(names[k]);
        temp_dir resumed_dir;
        fs::create_directories(resumed_dir.path);
        fs::copy(straight_dir.path / names[k], resumed_dir.path / names[k], fs::copy_options::recursive);
        train::detail::write_pointer(resumed_dir.path, "latest", names[k]);
        auto ropt = tiny_fit(resumed_dir.path);
        ropt.resume = true;
        simclr_lars<B> resumed(ctx, tiny_learner_config<B>());
        std::int64_t first_step = -1;
        const auto rr = train::fit(resumed, pairs, ropt, [&](const train::step_info& s) {
            if (first_step < 0) first_step = s.step;
        });
        CHECK(first_step == std::int64_t(k + 1));  // it went on from the checkpoint's step
        CHECK(rr.steps_done == 6);
        const auto got = weights(resumed);
        REQUIRE(got.size() == want.size());
        for (std::size_t t = 0; t < got.size(); ++t) testing::expect_close(got[t], want[t], tol, tol, "weights");
    }
}

TEST_CASE("fit: keep_last keeps the newest checkpoints and the best - best follows the metric") {
    tiny_run run;
    auto& [ctx, images, pairs] = run;
    temp_dir dir;
    auto opt = tiny_fit(dir.path);
    opt.epochs = 4;
    opt.keep_last = 1;
    opt.best_metric = "score";
    const std::map<std::int64_t, double> scores{{1, 0.5}, {2, 0.9}, {3, 0.7}, {4, 0.8}};
    struct scorer {
        const std::map<std::int64_t, double>& s;
        void on_validate(train::epoch_info& e) const { e.metrics["score"] = s.at(e.epoch); }
    };
    std::vector<std::pair<std::int64_t, bool>> seen;
    struct recorder {
        std::vector<std::pair<std::int64_t, bool>>& seen;
        void on_epoch_end(const train::epoch_info& e) const { seen.emplace_back(e.epoch, e.best); }
    };
    simclr_lars<reference> learner(ctx, tiny_learner_config<reference>());
    const auto r = train::fit(learner, pairs, opt, scorer{scores}, recorder{seen});
    CHECK(seen == std::vector<std::pair<std::int64_t, bool>>{{1, true}, {2, true}, {3, false}, {4, false}});
    CHECK(r.best_checkpoint.filename() == "ckpt-000002");
    CHECK(train::best_checkpoint(dir.path).filename() == "ckpt-000002");
    CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000004");
    std::vector<std::string> kept;
    for (const auto& e : fs::directory_iterator(dir.path))
        if (e.path().filename().string().rfind("ckpt-", 0) == 0) kept.push_back(e.path().filename().string());
    std::sort(kept.begin(), kept.end());
    CHECK(kept == std::vector<std::string>{"ckpt-000002", "ckpt-000004"});
    // The metric is saved with the checkpoint.
    CHECK(safetensors::reader(dir.path / "ckpt-000002" / "model.safetensors").metadata().at("metric.score") == "0.9");
}

TEST_CASE("fit: a callback stops training with a checkpoint - resuming finishes the run") {
    tiny_run run;
    auto& [ctx, images, pairs] = run;
    temp_dir full_dir, dir;
    simclr_lars<reference> full(ctx, tiny_learner_config<reference>());
    train::fit(full, pairs, tiny_fit(full_dir.path));

    simclr_lars<reference> first(ctx, tiny_learner_config<reference>());
    const auto r = train::fit(first, pairs, tiny_fit(dir.path), [](train::step_info& s) {
        if (s.step == 3) {
            s.stop = true;
            s.stop_reason = "enough";
        }
    });
    CHECK(r.stopped_early);
    CHECK(r.stop_reason == "enough");
    CHECK(r.steps_done == 4);  // steps 0..3: the one that asked to stop is taken
    CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000001-b000001");
    auto resume = tiny_fit(dir.path);
    resume.resume = true;
    simclr_lars<reference> second(ctx, tiny_learner_config<reference>());
    const auto r2 = train::fit(second, pairs, resume);
    CHECK_FALSE(r2.stopped_early);
    CHECK(weights(second) == weights(full));

    // The stock stoppers: after epoch 1, and a time budget that is spent at once.
    temp_dir d1, d2;
    simclr_lars<reference> a(ctx, tiny_learner_config<reference>()), b(ctx, tiny_learner_config<reference>());
    const auto ra = train::fit(a, pairs, tiny_fit(d1.path), train::stop_after_epoch{1});
    CHECK(ra.epochs_done == 1);
    CHECK(ra.stopped_early);
    CHECK(train::latest_checkpoint(d1.path).filename() == "ckpt-000001");
    const auto rb = train::fit(b, pairs, tiny_fit(d2.path), train::time_budget{0.0});
    CHECK(rb.steps_done == 1);
    CHECK(train::latest_checkpoint(d2.path).filename() == "ckpt-000000-b000001");
}

TEST_CASE("fit: SIGTERM, SIGINT or SIGUSR1 stops the run after the step it arrives in, checkpointed there; resume ends "
          "bitwise where an uninterrupted run ends") {
    tiny_run run;
    auto& [ctx, images, pairs] = run;
    temp_dir full_dir;
    simclr_lars<reference> full(ctx, tiny_learner_config<reference>());
    train::fit(full, pairs, tiny_fit(full_dir.path));
    for (const int sig : {SIGTERM, SIGINT, SIGUSR1}) {
        CAPTURE(sig);
        temp_dir dir;
        struct sigaction before {};
        ::sigaction(sig, nullptr, &before);
        simclr_lars<reference> first(ctx, tiny_learner_config<reference>());
        std::int64_t steps_seen = 0;
        // The signal comes from the process itself during step 1 (the second), as it
        // would from Slurm or a terminal; the callback before stop_on_signal raises it.
        const auto r = train::fit(
            first, pairs, tiny_fit(dir.path),
            [&](train::step_info& s) {
                ++steps_seen;
                if (s.step == 1) std::raise(sig);
            },
            train::stop_on_signal());
        CHECK(r.stopped_early);
        CHECK(r.stop_reason == detail::cat("stopped by signal ", sig, " (", train::stop_on_signal::name(sig), ") at step 2"));
        CHECK(train::stop_on_signal::received() == sig);
        CHECK(steps_seen == 2);
        CHECK(r.steps_done == 2);
        CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000000-b000002");
        // The handler is gone again: the disposition is the one before fit.
        struct sigaction after {};
        ::sigaction(sig, nullptr, &after);
        CHECK(reinterpret_cast<std::uintptr_t>(after.sa_handler) == reinterpret_cast<std::uintptr_t>(before.sa_handler));

        auto resume = tiny_fit(dir.path);
        resume.resume = true;
        simclr_lars<reference> second(ctx, tiny_learner_config<reference>());
        const auto r2 = train::fit(second, pairs, resume, train::stop_on_signal());
        CHECK_FALSE(r2.stopped_early);
        CHECK(train::stop_on_signal::received() == 0);
        CHECK(r2.steps_done == 6);
        CHECK(weights(second) == weights(full));  // the reference backend is exact
    }
}

TEST_CASE("fit: a non-finite loss stops the run, names the last good checkpoint and changes nothing") {
    tiny_run run;
    auto& [ctx, images, pairs] = run;
    temp_dir dir;
    auto opt = tiny_fit(dir.path);
    opt.epochs = 1;
    simclr_lars<reference> learner(ctx, tiny_learner_config<reference>());
    train::fit(learner, pairs, opt);
    const auto before = weights(learner);
    opt.epochs = 2;
    opt.resume = true;
    opt.lr = 1e38f;  // diverges at once
    bool ended = false;
    struct end_seen {
        bool& ended;
        void on_fit_end(const train::fit_result& r) const { ended = r.diverged; }
    };
    const std::string expected = "the last good checkpoint is " + (dir.path / "ckpt-000001").string();
    CHECK_THROWS_WITH_AS(train::fit(learner, pairs, opt, end_seen{ended}), doctest::Contains(expected.c_str()),
                         nonfinite_loss_error);
    CHECK(ended);
    CHECK(train::latest_checkpoint(dir.path).filename() == "ckpt-000001");
}

TEST_CASE("knn_predict and the kNN monitor equal a brute-force kNN") {
    const std::int64_t dim = 16, n = 200, nq = 50, classes = 4;
    const auto bank = testing::random_values(std::size_t(n * dim), 3), queries = testing::random_values(std::size_t(nq * dim), 4);
    std::vector<int> labels;
    for (std::int64_t i = 0; i < n; ++i) labels.push_back(int((i * 7) % classes));
    for (std::int64_t k : {1, 5, 20, 200}) {
        CAPTURE(k);
        const auto want = brute_force_knn(bank, labels, queries, dim, classes, k, 0.1);
        CHECK(train::knn_predict(bank, labels, queries, dim, classes, {k, 0.1}) == want);
    }
    // Queries equal to bank rows find themselves first: with k = 1 the accuracy is 1.
    const std::vector<float> same(bank.begin(), bank.begin() + 10 * dim);
    CHECK(train::knn_accuracy(bank, labels, same, std::vector<int>(labels.begin(), labels.begin() + 10), dim, classes, {1, 0.1}) == 1.0);
    CHECK_THROWS_AS(train::knn_predict(bank, labels, queries, dim + 1, classes), value_error);

    // The monitor: the learner's features of the bank and val images, then the same vote.
    context<reference> ctx;
    simclr_lars<reference> learner(ctx, tiny_learner_config<reference>());
    const auto images = tiny_images(24);
    std::vector<std::int64_t> first(18), rest(6);
    std::iota(first.begin(), first.end(), 0);
    std::iota(rest.begin(), rest.end(), 18);
    const auto eval = data::augment_config::eval(8);
    const data::labeled_images bank_images(images.subset(first), eval, 1, 0, false), val_images(images.subset(rest), eval, 1, 0, false);
    train::knn_monitor<simclr_lars<reference>> monitor(learner, bank_images, val_images, 1, {5, 0.1}, 7);
    std::int64_t fdim = 0;
    const auto fb = train::embed_all(learner, bank_images, 5, 1, &fdim), fq = train::embed_all(learner, val_images, 3, 1);
    const auto pred = brute_force_knn(fb, bank_images.data().labels, fq, fdim, 3, 5, 0.1);
    train::epoch_info e{1, 1, 0.0, {}, {}, false, 0.0, 0.0, false, {}};
    monitor.on_validate(e);
    CHECK(e.metrics.at("knn_accuracy") == doctest::Approx(testing::share_right(pred, val_images.data().labels)));
}
