#include <limits>
#include <tuple>

#include "testing.hpp"

using namespace micle;
using testing::random_values;

namespace {

struct linear_result {
    std::vector<float> y, dx, dw, db;
};

template <class B>
linear_result run_linear(const shape& xs, std::int64_t out, bool bias, std::uint64_t seed) {
    context<B> ctx;
    ops::linear<B> op;
    const shape ws{out, xs[1]};
    auto x = testing::make(ctx, xs, random_values(xs.numel(), seed));
    auto w = testing::make(ctx, ws, random_values(ws.numel(), seed + 1));
    auto b = testing::make(ctx, shape{out}, random_values(out, seed + 2));
    tensor<B> y, dx, dw, db;
    op.forward(ctx, x, w, bias ? &b : nullptr, y);
    auto dy = testing::make(ctx, y.shape(), random_values(y.numel(), seed + 3));
    op.backward_data(ctx, dy, w, dx);
    op.backward_weights(ctx, x, dy, dw, bias ? &db : nullptr);
    return {y.to_host(ctx), dx.to_host(ctx), dw.to_host(ctx), bias ? db.to_host(ctx) : std::vector<float>{}};
}

struct loss_result {
    float l2_loss, ce, bce, masked_bce;
    std::vector<float> l2_y, l2_dx, ce_dx, bce_dx, masked_bce_dx;
};

template <class B>
loss_result run_losses(const shape& s, std::uint64_t seed) {
    context<B> ctx;
    const auto xv = random_values(s.numel(), seed, -3.0f, 3.0f);
    std::vector<int> labels(static_cast<std::size_t>(s[0]));
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>((i * 7 + seed) % std::uint64_t(s[1]));
    auto targets = random_values(s.numel(), seed + 1, 0.0f, 1.0f);
    for (std::size_t i = 0; i < targets.size(); i += 2) targets[i] = targets[i] < 0.5f ? 0.0f : 1.0f;
    loss_result r{};
    ops::l2_normalize<B> l2;
    tensor<B> y, dx;
    l2.forward(ctx, testing::make(ctx, s, xv), y);
    r.l2_y = y.to_host(ctx);
    l2.backward(ctx, testing::make(ctx, s, random_values(s.numel(), seed + 2)), dx);
    r.l2_dx = dx.to_host(ctx);
    ops::softmax_cross_entropy<B> ce;
    r.ce = ce.forward(ctx, testing::make(ctx, s, xv), labels);
    ce.backward(ctx, dx);
    r.ce_dx = dx.to_host(ctx);
    ops::sigmoid_bce<B> bce;
    r.bce = bce.forward(ctx, testing::make(ctx, s, xv), testing::make(ctx, s, targets));
    bce.backward(ctx, dx);
    r.bce_dx = dx.to_host(ctx);
    auto mask = random_values(s.numel(), seed + 3, 0.0f, 1.0f);
    for (auto& v : mask) v = v < 0.3f ? 0.0f : 1.0f;
    r.masked_bce = bce.forward(ctx, testing::make(ctx, s, xv), testing::make(ctx, s, targets), testing::make(ctx, s, mask));
    bce.backward(ctx, dx);
    r.masked_bce_dx = dx.to_host(ctx);
    return r;
}

}  // namespace

TEST_CASE("linear<reference>: gradients match central finite differences") {
    using R = reference;
    context<R> ctx;
    const shape xs{3, 5}, ws{4, 5};
    auto xv = random_values(15, 1), wv = random_values(20, 2), bv = random_values(4, 3);
    const auto r = random_values(12, 4);
    ops::linear<R> op;
    tensor<R> y, dx, dw, db;
    auto run = [&] {
        auto x = testing::make(ctx, xs, xv), w = testing::make(ctx, ws, wv), b = testing::make(ctx, shape{4}, bv);
        op.forward(ctx, x, w, &b, y);
        return y.to_host(ctx);
    };
    run();
    auto x = testing::make(ctx, xs, xv), w = testing::make(ctx, ws, wv), dy = testing::make(ctx, y.shape(), r);
    op.backward_data(ctx, dy, w, dx);
    op.backward_weights(ctx, x, dy, dw, &db);
    auto loss = [&] { return testing::project(run(), r); };
    testing::gradcheck(xv, dx.to_host(ctx), loss, "dx");
    testing::gradcheck(wv, dw.to_host(ctx), loss, "dw");
    testing::gradcheck(bv, db.to_host(ctx), loss, "db");
}

TEST_CASE("l2_normalize, softmax_cross_entropy, sigmoid_bce <reference>: gradients match finite differences") {
    using R = reference;
    context<R> ctx;
    const shape s{4, 6};
    auto xv = random_values(s.numel(), 31, -2.0f, 2.0f);
    SUBCASE("l2_normalize") {
        const auto r = random_values(s.numel(), 32);
        ops::l2_normalize<R> op;
        tensor<R> y, dx;
        auto run = [&] {
            op.forward(ctx, testing::make(ctx, s, xv), y);
            return y.to_host(ctx);
        };
        run();
        op.backward(ctx, testing::make(ctx, s, r), dx);
        testing::gradcheck(xv, dx.to_host(ctx), [&] { return testing::project(run(), r); }, "l2 dx");
    }
    SUBCASE("softmax_cross_entropy") {
        const std::vector<int> labels{0, 5, 2, 2};
        ops::softmax_cross_entropy<R> op;
        tensor<R> dx;
        op.forward(ctx, testing::make(ctx, s, xv), labels);
        op.backward(ctx, dx);
        testing::gradcheck(xv, dx.to_host(ctx), [&] { return double(op.forward(ctx, testing::make(ctx, s, xv), labels)); },
                           "ce dx", 5e-3, 1e-2, 1e-4);
    }
    SUBCASE("sigmoid_bce") {
        auto t = random_values(s.numel(), 33, 0.0f, 1.0f);
        ops::sigmoid_bce<R> op;
        tensor<R> dx;
        op.forward(ctx, testing::make(ctx, s, xv), testing::make(ctx, s, t));
        op.backward(ctx, dx);
        testing::gradcheck(
            xv, dx.to_host(ctx),
            [&] { return double(op.forward(ctx, testing::make(ctx, s, xv), testing::make(ctx, s, t))); }, "bce dx", 5e-3,
            1e-2, 1e-4);
    }
}

namespace {
/// A 0/1 mask over [N, K] with about a third of the entries left out, and one whole row and
/// one whole column out (an image with no label kept, a label with no image kept).
std::vector<float> loss_mask(const shape& s, std::uint64_t seed) {
    auto m = random_values(s.numel(), seed, 0.0f, 1.0f);
    for (auto& v : m) v = v < 0.35f ? 0.0f : 1.0f;
    for (std::int64_t c = 0; c < s[1]; ++c) m[std::size_t(c)] = 0.0f;                    // row 0
    for (std::int64_t r = 0; r < s[0]; ++r) m[std::size_t(r * s[1] + s[1] - 1)] = 0.0f;  // last column
    return m;
}
}  // namespace

TEST_CASE_TEMPLATE("sigmoid_bce masked: left-out entries change neither the loss nor any gradient", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    const shape s{6, 5};
    const auto x = random_values(s.numel(), 41, -3.0f, 3.0f), mask = loss_mask(s, 42);
    auto t = random_values(s.numel(), 43, 0.0f, 1.0f);
    for (auto& v : t) v = v < 0.5f ? 0.0f : 1.0f;
    auto run = [&](const std::vector<float>& logits, const std::vector<float>& targets, std::vector<float>& grad) {
        ops::sigmoid_bce<B> op;
        const float loss = op.forward(ctx, testing::make(ctx, s, logits), testing::make(ctx, s, targets), testing::make(ctx, s, mask));
        tensor<B> dx;
        op.backward(ctx, dx);
        grad = dx.to_host(ctx);
        return loss;
    };
    std::vector<float> g0, g1;
    const float l0 = run(x, t, g0);
    // Every left-out entry's logit and target changed (flipped target, logit moved by 5).
    auto x1 = x, t1 = t;
    std::int64_t kept = 0;
    for (std::size_t i = 0; i < mask.size(); ++i) {
        if (mask[i] == 1.0f) {
            ++kept;
            continue;
        }
        x1[i] += 5.0f;
        t1[i] = 1.0f - t1[i];
    }
    const float l1 = run(x1, t1, g1);
    CHECK(l1 == l0);
    CHECK(g1 == g0);
    for (std::size_t i = 0; i < mask.size(); ++i)
        if (mask[i] == 0.0f) CHECK(g0[i] == 0.0f);
    // The loss is the plain loss of the kept entries alone: their mean, as BCEWithLogitsLoss
    // of logits[mask] against targets[mask].
    std::vector<float> xs, ts;
    for (std::size_t i = 0; i < mask.size(); ++i)
        if (mask[i] == 1.0f) xs.push_back(x[i]), ts.push_back(t[i]);
    ops::sigmoid_bce<B> plain;
    const float want = plain.forward(ctx, testing::make(ctx, shape{kept, 1}, xs), testing::make(ctx, shape{kept, 1}, ts));
    CHECK(l0 == doctest::Approx(want).epsilon(1e-5));
    tensor<B> dplain;
    plain.backward(ctx, dplain);
    const auto gp = dplain.to_host(ctx);
    for (std::size_t i = 0, k = 0; i < mask.size(); ++i)
        if (mask[i] == 1.0f) CHECK(g0[i] == doctest::Approx(gp[k++]).epsilon(1e-5));
    // Nothing kept: loss 0, gradient 0 (a batch whose every label is uncertain).
    ops::sigmoid_bce<B> none;
    CHECK(none.forward(ctx, testing::make(ctx, s, x), testing::make(ctx, s, t), tensor<B>::zeros(ctx, s)) == 0.0f);
    tensor<B> dnone;
    none.backward(ctx, dnone);
    CHECK(dnone.to_host(ctx) == std::vector<float>(std::size_t(s.numel()), 0.0f));
    // A mask value other than 0 or 1, or a mask of another shape, is refused.
    auto bad = mask;
    bad[3] = 0.5f;
    CHECK_THROWS_WITH_AS(ops::sigmoid_bce<B>().forward(ctx, testing::make(ctx, s, x), testing::make(ctx, s, t), testing::make(ctx, s, bad)),
                         "sigmoid_bce: mask value 0.5 at flat index 3 is not 0 or 1", value_error);
    CHECK_THROWS_AS(ops::sigmoid_bce<B>().forward(ctx, testing::make(ctx, s, x), testing::make(ctx, s, t), tensor<B>::zeros(ctx, shape{5, 6})),
                    shape_error);
}

TEST_CASE("sigmoid_bce<reference> masked: the gradient matches finite differences") {
    using R = reference;
    context<R> ctx;
    const shape s{5, 4};
    auto xv = random_values(s.numel(), 51, -2.0f, 2.0f);
    const auto t = random_values(s.numel(), 52, 0.0f, 1.0f), m = loss_mask(s, 53);
    ops::sigmoid_bce<R> op;
    tensor<R> dx;
    auto loss = [&] { return double(op.forward(ctx, testing::make(ctx, s, xv), testing::make(ctx, s, t), testing::make(ctx, s, m))); };
    loss();
    op.backward(ctx, dx);
    testing::gradcheck(xv, dx.to_host(ctx), loss, "masked bce dx", 5e-3, 1e-2, 1e-4);
}

TEST_CASE("losses <reference>: values against independent hand computations") {
    context<reference> ctx;
    // logits [[0, ln 3]] with label 1: softmax = [1/4, 3/4], loss = -ln(3/4).
    ops::softmax_cross_entropy<reference> ce;
    const std::vector<int> label{1};
    CHECK(ce.forward(ctx, testing::make(ctx, {1, 2}, {0.0f, std::log(3.0f)}), label) == doctest::Approx(-std::log(0.75)));
    // BCE of logit 0 is ln 2 for any target; of logit 100 with target 1 it is ~0, with 0 it is 100
    // (no overflow).
    ops::sigmoid_bce<reference> bce;
    CHECK(bce.forward(ctx, testing::make(ctx, {1, 3}, {0.0f, 100.0f, 100.0f}), testing::make(ctx, {1, 3}, {0.3f, 1.0f, 0.0f})) ==
          doctest::Approx((std::log(2.0) + 0.0 + 100.0) / 3));
    // l2_normalize of (3, 4) is (0.6, 0.8); of the zero row it is zero, not NaN.
    ops::l2_normalize<reference> l2;
    tensor<reference> y;
    l2.forward(ctx, testing::make(ctx, {2, 2}, {3, 4, 0, 0}), y);
    CHECK(y.to_host(ctx) == std::vector<float>{0.6f, 0.8f, 0.0f, 0.0f});
}

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("linear, l2_normalize and the losses equal the reference", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    std::uint64_t seed = 700;
    for (const auto& [xs, out, bias] :
         {std::tuple{shape{4, 7}, std::int64_t{5}, true}, std::tuple{shape{32, 512}, std::int64_t{128}, false},
          std::tuple{shape{3, 2048}, std::int64_t{1000}, true}, std::tuple{shape{17, 33}, std::int64_t{19}, true}}) {
        const shape input = xs;  // CAPTURE's lambda cannot capture a structured binding (C++20)
        CAPTURE(input);
        const auto want = run_linear<reference>(xs, out, bias, seed), got = run_linear<B>(xs, out, bias, seed);
        testing::expect_close(got.y, want.y, 1e-4, 1e-5, "y");
        testing::expect_close(got.dx, want.dx, 1e-4, 1e-5, "dx");
        testing::expect_close(got.dw, want.dw, 1e-4, 1e-5, "dw");
        if (bias) testing::expect_close(got.db, want.db, 1e-4, 1e-5, "db");
        seed += 10;
    }
    for (const shape s : {shape{8, 128}, shape{5, 3}, shape{64, 10}, shape{7, 1000}}) {
        CAPTURE(s);
        const auto want = run_losses<reference>(s, seed), got = run_losses<B>(s, seed);
        CHECK(got.ce == doctest::Approx(want.ce).epsilon(1e-5));
        CHECK(got.bce == doctest::Approx(want.bce).epsilon(1e-5));
        testing::expect_close(got.l2_y, want.l2_y, 1e-5, 1e-6, "l2 y");
        testing::expect_close(got.l2_dx, want.l2_dx, 1e-4, 1e-5, "l2 dx");
        testing::expect_close(got.ce_dx, want.ce_dx, 1e-4, 1e-5, "ce dx");
        testing::expect_close(got.bce_dx, want.bce_dx, 1e-4, 1e-5, "bce dx");
        CHECK(got.masked_bce == doctest::Approx(want.masked_bce).epsilon(1e-5));
        testing::expect_close(got.masked_bce_dx, want.masked_bce_dx, 1e-4, 1e-5, "masked bce dx");
        seed += 10;
    }
}
#endif

#if MICLE_HAS_ONEDNN
namespace {
using md = dnnl::memory::desc;

/// The rule linear<onednn> follows, asked of oneDNN directly: a pass reads the weights (or
/// writes their gradient) in the layout they have when that is its preferred layout or it
/// runs the same implementation for it as for the preferred one; otherwise it reorders
/// them, once a call. Returns how many of the three passes of a step reorder, and oneDNN's
/// choices for the log.
struct reorder_rule {
    int n = 0;
    std::string log;
};
reorder_rule expected_weight_reorders(const shape& xs, std::int64_t out, bool bias, const md& w) {
    const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    const shape ws{out, xs[1]};
    const md x = onednn_detail::plain_md(xs), y = onednn_detail::plain_md(shape{xs[0], out}),
             b = onednn_detail::plain_md(shape{out}), any = onednn_detail::any_md(ws);
    const md* bp = bias ? &b : nullptr;
    reorder_rule r;
    auto count = [&](const char* pass, auto make, auto weights_of) {
        const auto preferred = make(any);
        std::string own = "none";
        bool in_place = weights_of(preferred) == w;
        if (!in_place) {
            try {
                own = make(w).impl_info_str();
                in_place = own == preferred.impl_info_str();
            } catch (const backend_error&) {
            }
        }
        r.n += !in_place;
        r.log += detail::cat(pass, ": preferred ", preferred.impl_info_str(), ", for these weights ", own,
                           in_place ? " (in place)" : " (reorders)", "; ");
    };
    auto fwd_of = [&](const md& wd) { return onednn_compat::ip_fwd_pd(eng, x, wd, bp, y); };
    const auto fwd_any = fwd_of(any);
    count("forward", fwd_of, [](const auto& pd) { return pd.weights_desc(); });
    // The backward passes are hinted by the forward that runs.
    const bool fwd_in_place = r.n == 0;
    const auto hint = fwd_in_place ? fwd_of(w) : fwd_any;
    count("backward_data", [&](const md& wd) { return onednn_compat::ip_bwd_data_pd(eng, x, wd, y, hint); },
          [](const auto& pd) { return pd.weights_desc(); });
    count("backward_weights",
          [&](const md& wd) { return onednn_compat::ip_bwd_weights_pd(eng, x, wd, bp, y, hint); },
          [](const auto& pd) { return pd.diff_weights_desc(); });
    r.log = detail::cat(onednn_detail::isa_name(dnnl::get_effective_cpu_isa()), ": ", r.log);
    return r;
}
}  // namespace

TEST_CASE("linear<onednn>: each pass reads the weights, and writes their gradient, in their layout where oneDNN "
          "runs its preferred implementation for it; a layer adopts the layout with the fewest reorders a step") {
    std::uint64_t seed = 900;
    using tag = dnnl::memory::format_tag;
    // A projection head's shapes and a classifier's (whose blocked layouts would pad it),
    // with and without a bias; the weights plain, transposed (`ba`, which oneDNN's AVX2
    // forward prefers) and in the layout the layer adopts on this CPU.
    for (const auto& [xs, out, bias] :
         {std::tuple{shape{16, 256}, std::int64_t{256}, true}, std::tuple{shape{32, 512}, std::int64_t{128}, false},
          std::tuple{shape{9, 64}, std::int64_t{10}, false}}) {
        const shape input = xs;
        CAPTURE(input);
        const shape ws{out, xs[1]};
        const auto want = run_linear<reference>(xs, out, bias, seed);
        const auto plain = onednn_detail::plain_md(ws),
                   transposed = md(onednn_detail::to_dims(ws), dnnl::memory::data_type::f32, tag::ba);
        const int plain_reorders = expected_weight_reorders(xs, out, bias, plain).n,
                  transposed_reorders = expected_weight_reorders(xs, out, bias, transposed).n;
        for (const int layout : {0, 1, 2}) {
            CAPTURE(layout);
            context<onednn> ctx;
            ops::linear<onednn> op;
            auto x = testing::make(ctx, xs, random_values(xs.numel(), seed));
            auto w = testing::make(ctx, ws, random_values(ws.numel(), seed + 1));
            auto b = testing::make(ctx, shape{out}, random_values(out, seed + 2));
            if (layout == 1) w = w.to_layout(ctx, transposed);
            if (layout == 2) op.adopt_preferred_layout(ctx, x, w, bias);
            const auto w_desc = w.desc();
            const auto rule = expected_weight_reorders(xs, out, bias, w_desc);
            const int expected = rule.n;
            INFO(rule.log);
            CHECK(ops::linear<onednn>::weight_reorders_per_step(ctx, x.desc(), w_desc, bias) == expected);
            if (layout == 2) {
                // The adopted layout is never worse than the plain or transposed one, keeps
                // the weights unpadded, and needs no reorder where oneDNN's three passes
                // agree on one unpadded layout.
                CHECK(expected <= plain_reorders);
                CHECK(expected <= transposed_reorders);
                CHECK(w_desc.get_size() == plain.get_size());
                // (a structured binding is not captured by clang 14's lambdas: copies are)
                const auto adopted_elsewhere = [&, xs = xs, out = out, bias = bias](const md& c) {
                    return c.get_size() == plain.get_size() ? expected_weight_reorders(xs, out, bias, c).n : 99;
                };
                const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
                const md xm = onednn_detail::plain_md(xs), ym = onednn_detail::plain_md(shape{xs[0], out}),
                         bm = onednn_detail::plain_md(shape{out}), any = onednn_detail::any_md(ws);
                const auto fwd = onednn_compat::ip_fwd_pd(eng, xm, any, bias ? &bm : nullptr, ym);
                const md fwd_pref = fwd.weights_desc();
                const md bwd_data_pref = onednn_compat::ip_bwd_data_pd(eng, xm, any, ym, fwd).weights_desc();
                const md bwd_w_pref =
                    onednn_compat::ip_bwd_weights_pd(eng, xm, any, bias ? &bm : nullptr, ym, fwd).diff_weights_desc();
                CHECK(expected <= adopted_elsewhere(fwd_pref));
                CHECK(expected <= adopted_elsewhere(bwd_data_pref));
                CHECK(expected <= adopted_elsewhere(bwd_w_pref));
                if (fwd_pref == bwd_data_pref && fwd_pref == bwd_w_pref && fwd_pref.get_size() == plain.get_size())
                    CHECK(expected == 0);
            }
            tensor<onednn> y, dx, dw, db;
            auto dy = testing::make(ctx, shape{xs[0], out}, random_values(xs[0] * out, seed + 3));
            for (int step = 0; step < 2; ++step) {  // the second step runs the cached primitives
                const auto before = ctx.layout_reorders();
                op.forward(ctx, x, w, bias ? &b : nullptr, y);
                op.backward_data(ctx, dy, w, dx);
                op.backward_weights(ctx, x, dy, dw, bias ? &db : nullptr);
                // Inputs and output gradients are plain, as the passes read them: every
                // reorder counted is one of the weights or their gradient.
                CHECK(ctx.layout_reorders() - before == std::uint64_t(expected));
                testing::expect_close(y.to_host(ctx), want.y, 1e-4, 1e-5, "y");
                testing::expect_close(dx.to_host(ctx), want.dx, 1e-4, 1e-5, "dx");
                testing::expect_close(dw.to_host(ctx), want.dw, 1e-4, 1e-5, "dw");
                if (bias) testing::expect_close(db.to_host(ctx), want.db, 1e-4, 1e-5, "db");
                CHECK(w.desc() == w_desc);   // the weights were not moved
                CHECK(dw.desc() == w_desc);  // and their gradient has their layout
            }
        }
        seed += 10;
    }
}
#endif

TEST_CASE_TEMPLATE("linear and losses: bad input names the op and the values", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    auto x = tensor<B>::zeros(ctx, shape{4, 6});
    auto w = tensor<B>::zeros(ctx, shape{3, 5});
    auto x4 = tensor<B>::zeros(ctx, shape{4, 6, 1, 1});
    tensor<B> y;
    CHECK_THROWS_WITH_AS(ops::linear<B>().forward(ctx, x, w, nullptr, y),
                         "linear: input [4, 6] has 6 features but weight [3, 5] expects 5", shape_error);
    CHECK_THROWS_WITH_AS(ops::l2_normalize<B>().forward(ctx, x4, y),
                         "l2_normalize: input must have rank 2, got shape [4, 6, 1, 1]", shape_error);
    const std::vector<int> bad_label{0, 1, 6, 2}, short_labels{0, 1};
    CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy<B>().forward(ctx, x, bad_label),
                         "softmax_cross_entropy: label 6 of sample 2 is outside [0, 6)", value_error);
    CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy<B>().forward(ctx, x, short_labels),
                         "softmax_cross_entropy: 2 labels for logits [4, 6]", shape_error);
    std::vector<float> tv(24, 0.0f);
    tv[5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS(ops::sigmoid_bce<B>().forward(ctx, x, testing::make(ctx, {4, 6}, tv)),
                         "sigmoid_bce: targets value nan at flat index 5 is not in [0, 1]", value_error);
}
