#include "testing.hpp"
#include <cmath>

using namespace micle;
using testing::random_values;

namespace {

struct bn_result {
    std::vector<float> y, rm, rv, dx, dg, db, y_inf;
};

template <class B>
bn_result run_bn(const shape& xs, bool fuse_relu, std::uint64_t seed) {
    context<B> ctx;
    const shape cs{xs[1]};
    ops::batch_norm<B> op({1e-5f, 0.1f, fuse_relu});
    auto x = testing::make(ctx, xs, random_values(xs.numel(), seed, -2.0f, 3.0f));
    auto g = testing::make(ctx, cs, random_values(xs[1], seed + 1, 0.5f, 1.5f));
    auto b = testing::make(ctx, cs, random_values(xs[1], seed + 2));
    auto rm = testing::make(ctx, cs, random_values(xs[1], seed + 3));
    auto rv = testing::make(ctx, cs, random_values(xs[1], seed + 4, 0.5f, 2.0f));
    tensor<B> y, dx, dg, db, yi;
    op.forward_training(ctx, x, g, b, rm, rv, y);
    auto dy = testing::make(ctx, xs, random_values(xs.numel(), seed + 5));
    op.backward(ctx, x, dy, g, b, dx, dg, db);
    op.forward_inference(ctx, x, g, b, rm, rv, yi);
    return {y.to_host(ctx), rm.to_host(ctx), rv.to_host(ctx), dx.to_host(ctx), dg.to_host(ctx), db.to_host(ctx), yi.to_host(ctx)};
}

}  // namespace

TEST_CASE("batch_norm<reference>: running statistics follow PyTorch (momentum 0.1, unbiased variance)") {
    context<reference> ctx;
    // One channel, values 1..4: batch mean 2.5, biased variance 1.25, unbiased 5/3.
    auto x = tensor<reference>::from_host(ctx, shape{4, 1}, std::vector<float>{1, 2, 3, 4});
    auto g = tensor<reference>::from_host(ctx, shape{1}, std::vector<float>{1});
    auto b = tensor<reference>::from_host(ctx, shape{1}, std::vector<float>{0});
    auto rm = tensor<reference>::from_host(ctx, shape{1}, std::vector<float>{0});
    auto rv = tensor<reference>::from_host(ctx, shape{1}, std::vector<float>{1});
    tensor<reference> y;
    ops::batch_norm<reference>(ops::batch_norm_params{}).forward_training(ctx, x, g, b, rm, rv, y);
    CHECK(rm.to_host(ctx)[0] == doctest::Approx(0.25));
    CHECK(rv.to_host(ctx)[0] == doctest::Approx(0.9 + 0.1 * 5.0 / 3.0));
    // normalised with the biased variance
    CHECK(y.to_host(ctx)[0] == doctest::Approx(-1.5 / std::sqrt(1.25 + 1e-5)));
}

TEST_CASE("batch_norm<reference>: gradients match central finite differences") {
    using R = reference;
    context<R> ctx;
    for (const bool fuse : {false, true})
        for (const shape xs : {shape{3, 2, 3, 2}, shape{5, 3}}) {
            CAPTURE(xs);
            CAPTURE(fuse);
            const shape cs{xs[1]};
            std::vector<float> xv, gv, bv;
            // The fused ReLU has a kink at 0: pick data whose pre-activations all stay clear of
            // it by more than the finite-difference step moves them.
            for (std::uint64_t seed = 21;; seed += 3) {
                REQUIRE(seed < 21 + 3 * 100);
                xv = random_values(xs.numel(), seed);
                gv = random_values(xs[1], seed + 1, 0.5f, 1.5f);
                bv = random_values(xs[1], seed + 2, -0.3f, 0.3f);
                if (!fuse) break;
                auto rm0 = tensor<R>::zeros(ctx, cs), rv0 = tensor<R>::zeros(ctx, cs);
                tensor<R> z;
                auto x = testing::make(ctx, xs, xv), g = testing::make(ctx, cs, gv), b = testing::make(ctx, cs, bv);
                ops::batch_norm<R>(ops::batch_norm_params{}).forward_training(ctx, x, g, b, rm0, rv0, z);
                const auto zv = z.to_host(ctx);
                if (std::all_of(zv.begin(), zv.end(), [](float v) { return std::abs(v) > 0.05f; })) break;
            }
            const auto r = random_values(xs.numel(), 24);
            ops::batch_norm<R> op({1e-5f, 0.1f, fuse});
            tensor<R> y, dx, dg, db;
            auto rm = tensor<R>::zeros(ctx, cs), rv = tensor<R>::zeros(ctx, cs);
            auto run = [&] {
                auto x = testing::make(ctx, xs, xv), g = testing::make(ctx, cs, gv), b = testing::make(ctx, cs, bv);
                op.forward_training(ctx, x, g, b, rm, rv, y);
                return y.to_host(ctx);
            };
            run();
            auto x = testing::make(ctx, xs, xv), g = testing::make(ctx, cs, gv), b = testing::make(ctx, cs, bv);
            auto dy = testing::make(ctx, xs, r);
            op.backward(ctx, x, dy, g, b, dx, dg, db);
            const auto dxv = dx.to_host(ctx), dgv = dg.to_host(ctx), dbv = db.to_host(ctx);
            auto loss = [&] { return testing::project(run(), r); };
            testing::gradcheck(xv, dxv, loss, "dx");
            testing::gradcheck(gv, dgv, loss, "dgamma");
            testing::gradcheck(bv, dbv, loss, "dbeta");
        }
}

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("batch_norm: training, running stats, backward and inference equal the reference", B,
                   MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    std::uint64_t seed = 300;
    for (const bool fuse : {false, true})
        for (const shape xs : {shape{2, 3, 7, 7}, shape{4, 17, 5, 3}, shape{2, 32, 4, 4}, shape{8, 20}, shape{3, 64, 1, 1}}) {
            CAPTURE(xs);
            CAPTURE(fuse);
            const auto want = run_bn<reference>(xs, fuse, seed), got = run_bn<B>(xs, fuse, seed);
            testing::expect_close(got.y, want.y, 1e-4, 1e-5, "y");
            testing::expect_close(got.rm, want.rm, 1e-5, 1e-6, "running_mean");
            testing::expect_close(got.rv, want.rv, 1e-5, 1e-6, "running_var");
            testing::expect_close(got.dx, want.dx, 1e-3, 1e-4, "dx");
            testing::expect_close(got.dg, want.dg, 1e-4, 1e-5, "dgamma");
            testing::expect_close(got.db, want.db, 1e-4, 1e-5, "dbeta");
            testing::expect_close(got.y_inf, want.y_inf, 1e-4, 1e-5, "y (inference)");
            seed += 10;
        }
}
#endif

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("batch_norm: one op object alternates between inference and training", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    // An evaluation pass before the first training step (or between steps) must not
    // disturb training: the op builds each primitive on first use.
    context<B> ctx;
    context<reference> rctx;
    const shape xs{4, 5, 3, 3}, cs{5};
    const auto xv = random_values(xs.numel(), 1), gv = random_values(5, 2, 0.5f, 1.5f), bv = random_values(5, 3);
    ops::batch_norm<B> op(ops::batch_norm_params{1e-5f, 0.1f, true});
    ops::batch_norm<reference> ref(ops::batch_norm_params{1e-5f, 0.1f, true});
    auto x = testing::make(ctx, xs, xv), g = testing::make(ctx, cs, gv), b = testing::make(ctx, cs, bv);
    auto rm = tensor<B>::zeros(ctx, cs), rv = tensor<B>::zeros(ctx, cs);
    auto xr = testing::make(rctx, xs, xv), gr = testing::make(rctx, cs, gv), br = testing::make(rctx, cs, bv);
    auto rmr = tensor<reference>::zeros(rctx, cs), rvr = tensor<reference>::zeros(rctx, cs);
    rv.fill(ctx, 1.0f);
    rvr.fill(rctx, 1.0f);
    tensor<B> y, dx, dg, db;
    tensor<reference> yr, dxr, dgr, dbr;
    for (int round = 0; round < 2; ++round) {
        op.forward_inference(ctx, x, g, b, rm, rv, y);
        ref.forward_inference(rctx, xr, gr, br, rmr, rvr, yr);
        testing::expect_close(y.to_host(ctx), yr.to_host(rctx), 1e-4, 1e-5, "inference");
        op.forward_training(ctx, x, g, b, rm, rv, y);
        ref.forward_training(rctx, xr, gr, br, rmr, rvr, yr);
        testing::expect_close(y.to_host(ctx), yr.to_host(rctx), 1e-4, 1e-5, "training");
        op.backward(ctx, x, x, g, b, dx, dg, db);
        ref.backward(rctx, xr, xr, gr, br, dxr, dgr, dbr);
        testing::expect_close(dx.to_host(ctx), dxr.to_host(rctx), 1e-3, 1e-4, "dx");
    }
}
#endif


TEST_CASE_TEMPLATE("batch_norm: bad input names the op and the shapes", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    ops::batch_norm<B> op(ops::batch_norm_params{});
    auto x = tensor<B>::zeros(ctx, shape{2, 3, 4, 4});
    auto c3 = tensor<B>::zeros(ctx, shape{3});
    auto c4 = tensor<B>::zeros(ctx, shape{4});
    auto one = tensor<B>::zeros(ctx, shape{1, 3, 1, 1});
    auto empty = tensor<B>::zeros(ctx, shape{0, 3, 4, 4});
    tensor<B> y, dx, dg, db;
    CHECK_THROWS_WITH_AS(op.forward_training(ctx, x, c4, c3, c3, c3, y),
                         "batch_norm: per-channel parameter [4] does not match the 3 channels of input [2, 3, 4, 4]",
                         shape_error);
    CHECK_THROWS_WITH_AS(op.forward_training(ctx, one, c3, c3, c3, c3, y),
                         doctest::Contains("more than one value per channel"), shape_error);
    CHECK_THROWS_WITH_AS(op.forward_training(ctx, empty, c3, c3, c3, c3, y), doctest::Contains("zero-sized"), shape_error);
    // One value per channel is fine for inference, which reads the running statistics:
    // y = gamma (x - mean) / sqrt(var + eps) + beta.
    {
        const std::vector<float> xv{0.5f, -1.0f, 2.0f}, g{2.0f, -1.0f, 0.5f}, be{0.1f, 0.2f, -0.3f}, m{1.0f, 0.0f, -2.0f},
            var{3.0f, 0.25f, 1.0f};
        auto t = [&](const std::vector<float>& v, const shape& s) { return tensor<B>::from_host(ctx, s, v); };
        const auto x1 = t(xv, shape{1, 3, 1, 1});
        op.forward_inference(ctx, x1, t(g, shape{3}), t(be, shape{3}), t(m, shape{3}), t(var, shape{3}), y);
        const auto got = y.to_host(ctx);
        REQUIRE(got.size() == 3);
        const double eps = ops::batch_norm_params{}.eps;
        for (std::size_t k = 0; k < 3; ++k)
            CHECK(got[k] == doctest::Approx(g[k] * (xv[k] - m[k]) / std::sqrt(var[k] + eps) + be[k]).epsilon(1e-5));
    }
    CHECK_THROWS_WITH_AS(op.backward(ctx, x, x, c3, c3, dx, dg, db), doctest::Contains("needs a forward_training"),
                         shape_error);
}
