#include <cmath>
#include <memory>

#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "testing.hpp"

using namespace micle;

namespace {
using R = reference;

nn::parameter<R> make_param(context<R>& ctx, const char* name, nn::param_role role, std::vector<float> w,
                            std::vector<float> g) {
    const shape s{static_cast<std::int64_t>(w.size())};
    return {name, tensor<R>::from_host(ctx, s, w), tensor<R>::from_host(ctx, s, g), role};
}
}  // namespace

TEST_CASE("sgd: momentum, Nesterov and weight decay by hand") {
    context<R> ctx;
    auto w = make_param(ctx, "w", nn::param_role::weight, {1.0f, -2.0f}, {0.5f, 0.25f});
    auto b = make_param(ctx, "b", nn::param_role::bias, {1.0f}, {0.5f});
    optim::sgd<R> opt({0.9f, 0.1f, false, false}, {&w, &b});
    opt.step(ctx, 0.1f);
    // weight: g = 0.5 + 0.1*1 = 0.6, buf = 0.6, w = 1 - 0.06 = 0.94; g2 = 0.25 - 0.2 = 0.05, w = -2.005
    // bias (no decay): g = 0.5, w = 1 - 0.05 = 0.95
    CHECK(w.value.to_host(ctx)[0] == doctest::Approx(0.94));
    CHECK(w.value.to_host(ctx)[1] == doctest::Approx(-2.005));
    CHECK(b.value.to_host(ctx)[0] == doctest::Approx(0.95));
    opt.step(ctx, 0.1f);
    // weight[0]: g = 0.5 + 0.094 = 0.594, buf = 0.9*0.6 + 0.594 = 1.134, w = 0.94 - 0.1134 = 0.8266
    CHECK(w.value.to_host(ctx)[0] == doctest::Approx(0.8266));

    auto n = make_param(ctx, "n", nn::param_role::weight, {1.0f}, {1.0f});
    optim::sgd<R> nes({0.5f, 0.0f, true, false}, {&n});
    nes.step(ctx, 1.0f);  // buf = 1, update = g + 0.5*buf = 1.5
    CHECK(n.value.to_host(ctx)[0] == doctest::Approx(-0.5));
    nes.step(ctx, 1.0f);  // buf = 0.5 + 1 = 1.5, update = 1 + 0.75 = 1.75
    CHECK(n.value.to_host(ctx)[0] == doctest::Approx(-2.25));
}

TEST_CASE("lars: SimCLR's trust ratio, exclusions and momentum by hand") {
    context<R> ctx;
    // ||w|| = 5, g = (0, 1) + wd * w with wd = 0.1 -> (0.3, 1.4), ||g|| = sqrt(0.09 + 1.96)
    auto w = make_param(ctx, "conv.weight", nn::param_role::weight, {3.0f, 4.0f}, {0.0f, 1.0f});
    auto s = make_param(ctx, "bn.weight", nn::param_role::norm_scale, {2.0f}, {0.5f});
    optim::lars<R> opt({0.9f, 0.1f, 0.001f, false, false}, {&w, &s});
    opt.step(ctx, 2.0f);
    const double gn = std::sqrt(0.09 + 1.96), trust = 0.001 * 5.0 / gn;
    CHECK(w.value.to_host(ctx)[0] == doctest::Approx(3.0 - 2.0 * trust * 0.3));
    CHECK(w.value.to_host(ctx)[1] == doctest::Approx(4.0 - 2.0 * trust * 1.4));
    // excluded: plain momentum SGD at the full rate, no decay: 2 - 2 * 0.5
    CHECK(s.value.to_host(ctx)[0] == doctest::Approx(1.0));
    opt.step(ctx, 2.0f);  // v = 0.9 * 1 + 2 * 0.5 = 1.9
    CHECK(s.value.to_host(ctx)[0] == doctest::Approx(-0.9));

    // Zero weights (or gradients) fall back to a trust ratio of 1.
    auto z = make_param(ctx, "z.weight", nn::param_role::weight, {0.0f}, {1.0f});
    optim::lars<R> zero({0.0f, 0.0f, 0.001f, false, false}, {&z});
    zero.step(ctx, 0.5f);
    CHECK(z.value.to_host(ctx)[0] == doctest::Approx(-0.5));
}

TEST_CASE("adamw: bias-corrected moments and decoupled decay by hand") {
    context<R> ctx;
    auto w = make_param(ctx, "w", nn::param_role::weight, {1.0f}, {0.5f});
    optim::adamw<R> opt({0.9f, 0.999f, 1e-8f, 0.1f, false}, {&w});
    opt.step(ctx, 0.01f);
    // w = 1 * (1 - 0.001) = 0.999; m_hat = 0.5, v_hat = 0.25 -> step 0.01 * 0.5 / 0.5 = 0.01
    CHECK(w.value.to_host(ctx)[0] == doctest::Approx(0.989).epsilon(1e-6));
    w.grad.assign(ctx, std::vector<float>{-1.0f});
    opt.step(ctx, 0.01f);
    // m = 0.9*0.05 - 0.1 = -0.055, v = 0.999*0.00025 + 0.001 = 0.00124975;
    // m_hat = -0.055/0.19, v_hat = 0.00124975/0.001999
    const double m_hat = -0.055 / 0.19, v_hat = 0.00124975 / (1 - 0.999 * 0.999);
    const double expected = 0.989 * (1 - 0.001) - 0.01 * m_hat / (std::sqrt(v_hat) + 1e-8);
    CHECK(w.value.to_host(ctx)[0] == doctest::Approx(expected).epsilon(1e-5));
}

TEST_CASE("optimizers refuse to step without gradients") {
    context<R> ctx;
    nn::parameter<R> p{"layer.weight", tensor<R>::zeros(ctx, {3}), tensor<R>{}, nn::param_role::weight};
    optim::sgd<R> opt({}, {&p});
    CHECK_THROWS_WITH_AS(opt.step(ctx, 0.1f), doctest::Contains("parameter layer.weight has no gradient"), shape_error);
}

#if MICLE_HAS_ONEDNN
// A conv2d<onednn> layer moves its weights to a blocked layout at its first forward, after
// the optimizer was made (and perhaps after its state was loaded from a checkpoint).
TEST_CASE_TEMPLATE("optimizers on oneDNN follow a parameter into a blocked layout; checkpoints hold plain order", O,
                   optim::sgd<onednn>, optim::lars<onednn>, optim::adamw<onednn>) {
    using T = tensor<onednn>;
    context<onednn> ctx;
    const shape s{20, 12, 3, 3};  // ABcd16b16a pads it to 32 x 16 x 3 x 3
    const dnnl::memory::desc blocked(onednn_detail::to_dims(s), dnnl::memory::data_type::f32,
                                     dnnl::memory::format_tag::ABcd16b16a);
    REQUIRE(blocked.get_size() > std::size_t(s.numel()) * sizeof(float));
    const auto w0 = testing::random_values(s.numel(), 31);
    const typename O::config cfg{};
    struct run_result {
        std::vector<float> weights;
        std::vector<std::vector<float>> state;
    };
    // Four steps; the values move to the blocked layout before step `move_at` (never if
    // -1); before step 2 a fresh optimizer takes over the state through the checkpoint
    // entries (read, in plain order, then write).
    auto run = [&](int move_at) {
        nn::parameter<onednn> p{"layer.weight", T::from_host(ctx, s, w0), T{}, nn::param_role::weight};
        auto opt = std::make_unique<O>(cfg, std::vector<nn::parameter<onednn>*>{&p});
        for (int k = 0; k < 4; ++k) {
            if (k == move_at) p.value = p.value.to_layout(ctx, blocked);
            if (k == 2) {  // a checkpoint: the state through read() into a fresh optimizer's write()
                auto fresh = std::make_unique<O>(cfg, std::vector<nn::parameter<onednn>*>{&p});
                auto from = opt->state(), to = fresh->state();
                REQUIRE(from.size() == to.size());
                for (std::size_t i = 0; i < from.size(); ++i) {
                    CHECK(from[i].size == to[i].size);
                    to[i].write(from[i].read());
                }
                opt = std::move(fresh);
            }
            p.grad = T::from_host(ctx, s, testing::random_values(s.numel(), 40 + std::uint64_t(k))).to_layout(ctx, p.value.desc());
            opt->step(ctx, 0.05f);
        }
        // blocked padding stays zero: the buffer holds no more than the values
        const auto all = p.value.host_buffer();
        const auto vals = p.value.to_host(ctx);
        CHECK(optim::detail::squared_norm(all) == doctest::Approx(optim::detail::squared_norm(vals)).epsilon(1e-12));
        run_result r{vals, {}};
        for (const auto& e : opt->state()) {
            CHECK((e.name == "step" || e.size == std::size_t(s.numel())));
            r.state.push_back(e.read());
        }
        return r;
    };
    // Plain throughout, against moved before the first step, before step 1 (the state is
    // handed over in blocked order) and before step 3 (handed over in plain order, then moved).
    const auto a = run(-1), b = run(0), c = run(1), d = run(3);
    for (const auto* other : {&b, &c, &d}) {
        testing::expect_close(other->weights, a.weights, 1e-6, 1e-7, "weights");
        REQUIRE(other->state.size() == a.state.size());
        for (std::size_t i = 0; i < a.state.size(); ++i) testing::expect_close(other->state[i], a.state[i], 1e-6, 1e-7, "state");
    }

    // A gradient in another layout than its values is refused, naming the parameter.
    nn::parameter<onednn> p{"layer.weight", T::from_host(ctx, s, w0).to_layout(ctx, blocked), T{}, nn::param_role::weight};
    O opt(cfg, {&p});
    p.grad = T::from_host(ctx, s, w0);
    CHECK_THROWS_WITH_AS(opt.step(ctx, 0.1f), doctest::Contains("layer.weight has its gradient in another memory layout"),
                         micle::error);
}
#endif

TEST_CASE("schedules: warmup + cosine and batch-size scaling") {
    const optim::warmup_cosine s{1.0f, 10, 110, 0.0f};
    CHECK(s(0) == 0.0f);
    CHECK(s(5) == doctest::Approx(0.5));
    CHECK(s(10) == doctest::Approx(1.0));
    CHECK(s(60) == doctest::Approx(0.5));
    CHECK(s(110) == doctest::Approx(0.0));
    CHECK(s(1000) == 0.0f);
    CHECK(optim::warmup_cosine{1.0f, 0, 100, 0.1f}(50) == doctest::Approx(0.55));
    CHECK(optim::scaled_lr(0.3f, 512, optim::lr_scaling::linear) == doctest::Approx(0.6));
    CHECK(optim::scaled_lr(0.075f, 256, optim::lr_scaling::sqrt) == doctest::Approx(1.2));
    CHECK(optim::scaled_lr(0.1f, 64, optim::lr_scaling::none) == doctest::Approx(0.1));
    CHECK_THROWS_AS(optim::scaled_lr(0.1f, 0, optim::lr_scaling::linear), value_error);
}
