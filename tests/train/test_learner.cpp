#include <cmath>
#include <filesystem>
#include <limits>
#include <unistd.h>

#include "learners.hpp"
#include "micle/train/checkpoint.hpp"

using namespace micle;

using testing::simclr_lars;
using testing::simclr_sgd;
using testing::tiny_config;


TEST_CASE_TEMPLATE("contrastive_learner: LARS drives the loss down on a fixed batch", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    using L = simclr_lars<B>;
    auto cfg = tiny_config<L>();
    L learner(ctx, cfg);
    const auto x = tensor<B>::from_host(ctx, {12, 3, 8, 8}, testing::noisy_view_pairs());
    const float initial = learner.step(x, 1.0f);
    float last = initial;
    for (int s = 0; s < 25; ++s) last = learner.step(x, 1.0f);
    CHECK(learner.steps_done() == 26);
    MESSAGE(B::name << ": loss " << initial << " -> " << last);
    CHECK(last < 0.5f * initial);
}

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("contrastive_learner: a few steps agree with the reference backend", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    context<reference> rctx;
    auto cfg = tiny_config<simclr_sgd<B>>();
    cfg.optimizer = {0.9f, 1e-4f, false, false};
    simclr_sgd<B> fast(ctx, cfg);
    simclr_sgd<reference> ref(rctx, cfg);
    const std::vector<std::int64_t> groups{0, 1, 1, 2, 0, 1, 1, 2};
    for (int s = 0; s < 3; ++s) {
        const auto v = testing::random_values(8 * 3 * 8 * 8, 10 + std::uint64_t(s));
        const float lf = fast.step(tensor<B>::from_host(ctx, {8, 3, 8, 8}, v), groups, 0.05f);
        const float lr = ref.step(tensor<reference>::from_host(rctx, {8, 3, 8, 8}, v), groups, 0.05f);
        CAPTURE(s);
        CHECK(lf == doctest::Approx(lr).epsilon(1e-4));
    }
    auto a = fast.state();
    auto b = ref.state();
    for (std::size_t i = 0; i < a.params.size(); ++i) {
        CAPTURE(a.params[i]->name);
        testing::expect_close(a.params[i]->value.to_host(ctx), b.params[i]->value.to_host(rctx), 1e-3, 1e-4, "weights");
    }
}
#endif

TEST_CASE_TEMPLATE("contrastive_learner: a NaN loss stops the step before any update", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    simclr_sgd<B> learner(ctx, tiny_config<simclr_sgd<B>>());
    const auto v = testing::random_values(4 * 3 * 8 * 8, 1);
    const auto x = tensor<B>::from_host(ctx, {4, 3, 8, 8}, v);
    learner.step(x, 0.1f);
    // A diverged parameter (here: planted) makes the projections, and so the loss, NaN.
    auto state = learner.state();
    nn::parameter<B>* bias = nullptr;
    for (auto* p : state.params)
        if (p->name == "head.2.bias") bias = p;
    REQUIRE(bias != nullptr);
    auto b = bias->value.to_host(ctx);
    b[3] = std::numeric_limits<float>::quiet_NaN();
    bias->value.assign(ctx, b);
    const auto before = state.params[0]->value.to_host(ctx);
    CHECK_THROWS_WITH_AS(learner.step(x, 0.1f), doctest::Contains("the loss is NaN at step 1; parameters were not updated"),
                         nonfinite_loss_error);
    CHECK(state.params[0]->value.to_host(ctx) == before);
    CHECK(learner.steps_done() == 1);
}

TEST_CASE("contrastive_learner: a run checkpointed and resumed ends bitwise equal to an uninterrupted one (reference)") {
    using R = reference;
    namespace fs = std::filesystem;
    context<R> ctx;
    using L = simclr_lars<R>;
    const auto cfg = tiny_config<L>();
    const std::vector<std::int64_t> groups{0, 1, 2, 3, 0, 1, 2, 3};
    auto batch = [&](int s) {
        return tensor<R>::from_host(ctx, {8, 3, 8, 8}, testing::random_values(8 * 3 * 8 * 8, 40 + std::uint64_t(s)));
    };
    L straight(ctx, cfg);
    for (int s = 0; s < 4; ++s) straight.step(batch(s), groups, 0.5f);

    const fs::path dir = fs::temp_directory_path() / ("micle-resume-" + std::to_string(::getpid()));
    {
        L first(ctx, cfg);
        for (int s = 0; s < 2; ++s) first.step(batch(s), groups, 0.5f);
        train::save_checkpoint(dir, train::checkpoint_name(1), first, {});  // weights, optimizer, step counter
    }
    L resumed(ctx, cfg);
    train::load_checkpoint(train::latest_checkpoint(dir), resumed);
    for (int s = 2; s < 4; ++s) resumed.step(batch(s), groups, 0.5f);
    fs::remove_all(dir);

    auto a = straight.state(), b = resumed.state();
    for (std::size_t i = 0; i < a.params.size(); ++i) {
        CAPTURE(a.params[i]->name);
        CHECK(a.params[i]->value.to_host(ctx) == b.params[i]->value.to_host(ctx));
    }
    for (std::size_t i = 0; i < a.buffers.size(); ++i) CHECK(a.buffers[i]->value.to_host(ctx) == b.buffers[i]->value.to_host(ctx));
    CHECK(resumed.steps_done() == 4);
}

TEST_CASE_TEMPLATE("supervised_learner: a linear probe with feature_norm learns from features of very different scales",
                   B, MICLE_ALL_BACKENDS) {
    // What a random encoder's features look like to a linear probe: large positive values
    // of very different scales, and the class in one small feature. Plain SGD on the
    // classifier is at the mercy of the large ones; batch norm before it (SimCLR's linear
    // evaluation) makes every feature count equally.
    MICLE_SKIP_WITHOUT_DEVICE(B);
    using learner_t = train::supervised_learner<B, models::resnet, optim::sgd>;
    const std::int64_t n = 64;
    auto accuracy_after_training = [&](bool feature_norm) {
        context<B> ctx;
        typename learner_t::config cfg;
        cfg.backbone.depth = 18;
        cfg.backbone.base_channels = 4;
        cfg.backbone.stem = models::stem_kind::small;
        cfg.classes = 2;
        cfg.freeze_backbone = true;
        cfg.feature_norm = feature_norm;
        cfg.optimizer.momentum = 0.9f;
        cfg.seed = 5;
        learner_t l(ctx, cfg);
        const std::int64_t f = l.backbone().output_dim();
        std::vector<float> x(std::size_t(n * f));
        std::vector<int> y(static_cast<std::size_t>(n));
        const auto noise = testing::random_values(x.size(), 6, 0.0f, 1.0f);
        for (std::int64_t i = 0; i < n; ++i) {
            y[std::size_t(i)] = i % 4 == 0;  // 25% positives: the majority class is right on 75%
            for (std::int64_t j = 0; j < f; ++j)
                x[std::size_t(i * f + j)] = 1000.0f * float(j + 1) * (1.0f + noise[std::size_t(i * f + j)]);
            x[std::size_t(i * f)] = 0.01f * (y[std::size_t(i)] ? 1.0f : -1.0f) + 0.002f * noise[std::size_t(i * f)];
        }
        const auto features = tensor<B>::from_host(ctx, {n, f}, x);
        for (int s = 0; s < 300; ++s) l.step_head(features, y, {}, 0.05f);
        const auto p = l.probabilities(features);
        int right = 0;
        for (std::int64_t i = 0; i < n; ++i) right += (p[std::size_t(2 * i + 1)] > 0.5f) == bool(y[std::size_t(i)]);
        return double(right) / double(n);
    };
    CHECK(accuracy_after_training(true) == 1.0);
    CHECK(accuracy_after_training(false) < 0.9);  // what the probe did before feature_norm
}
