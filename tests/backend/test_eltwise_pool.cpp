#include <algorithm>
#include <numeric>

#include "testing.hpp"

using namespace micle;
using testing::random_values;

namespace {

/// Values of magnitude >= 0.1 (no ReLU kink within a finite-difference step).
std::vector<float> away_from_zero(std::int64_t n, std::uint64_t seed) {
    auto v = random_values(n, seed, 0.1f, 1.0f);
    auto s = random_values(n, seed + 1);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = s[i] < 0 ? -v[i] : v[i];
    return v;
}

/// A shuffled ramp: distinct values 0.05 apart, so no max-pooling window has a near tie.
std::vector<float> distinct(std::int64_t n, std::uint64_t seed) {
    std::vector<float> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0.0f);
    std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
    for (auto& x : v) x = 0.05f * x - 0.025f * float(n);
    return v;
}

const ops::pool2d_params pool_cases[] = {
    {ops::pool_kind::max, 3, 3, 2, 2, 1, 1},             // ResNet stem
    {ops::pool_kind::max, 2, 2, 2, 2, 0, 0},             // odd sides drop the last row/column
    {ops::pool_kind::avg_include_pad, 3, 3, 2, 2, 1, 1}, // PyTorch AvgPool2d default
    {ops::pool_kind::avg_exclude_pad, 3, 3, 1, 1, 1, 1},
    {ops::pool_kind::avg_include_pad, 2, 3, 1, 2, 0, 1},
};
const shape pool_shapes[] = {{2, 3, 7, 7}, {1, 17, 9, 8}, {2, 32, 5, 5}};

}  // namespace

TEST_CASE("relu, pooling, global pooling <reference>: gradients match central finite differences") {
    using R = reference;
    context<R> ctx;
    const shape xs{2, 3, 5, 5};
    const auto r = random_values(xs.numel(), 5);
    SUBCASE("relu") {
        auto xv = away_from_zero(xs.numel(), 1);
        ops::relu<R> op;
        tensor<R> y, dx;
        auto run = [&] {
            op.forward(ctx, testing::make(ctx, xs, xv), y);
            return y.to_host(ctx);
        };
        run();
        op.backward(ctx, testing::make(ctx, xs, xv), testing::make(ctx, xs, r), dx);
        testing::gradcheck(xv, dx.to_host(ctx), [&] { return testing::project(run(), r); }, "relu dx");
    }
    SUBCASE("pool2d") {
        for (const auto& p : pool_cases) {
            CAPTURE(int(p.kind));
            auto xv = distinct(xs.numel(), 2);
            ops::pool2d<R> op(p);
            tensor<R> y, dx;
            auto run = [&] {
                op.forward(ctx, testing::make(ctx, xs, xv), y);
                return y.to_host(ctx);
            };
            run();
            const auto rr = random_values(y.numel(), 6);
            op.backward(ctx, testing::make(ctx, y.shape(), rr), dx);
            // Pooling is linear in x (max pooling piecewise, its inputs 0.05 apart, far past
            // eps), so central differences are exact up to float rounding of y (about 2e-5
            // here): the tolerance is 1e-4, far under an average's 1/9 vs 1/8 (0.014).
            testing::gradcheck(xv, dx.to_host(ctx), [&] { return testing::project(run(), rr); }, "pool dx", 5e-3, 1e-3, 1e-4);
        }
    }
    SUBCASE("global_avg_pool") {
        auto xv = random_values(xs.numel(), 3);
        ops::global_avg_pool<R> op;
        tensor<R> y, dx;
        auto run = [&] {
            op.forward(ctx, testing::make(ctx, xs, xv), y);
            return y.to_host(ctx);
        };
        run();
        CHECK(y.shape() == shape{2, 3});
        const auto rr = random_values(6, 7);
        op.backward(ctx, testing::make(ctx, y.shape(), rr), dx);
        // dx = dy / 25, at most 0.04: a tolerance of 1e-4 (linear, as above) catches / 24.
        testing::gradcheck(xv, dx.to_host(ctx), [&] { return testing::project(run(), rr); }, "gap dx", 5e-3, 1e-3, 1e-4);
    }
}

TEST_CASE("pool2d<reference>: a hand-computed case") {
    context<reference> ctx;
    // 1x1x3x3 input 1..9; 2x2 windows, stride 2, padding 1 -> 2x2 output.
    std::vector<float> v(9);
    std::iota(v.begin(), v.end(), 1.0f);
    tensor<reference> y;
    ops::pool2d<reference>({ops::pool_kind::max, 2, 2, 2, 2, 1, 1}).forward(ctx, testing::make(ctx, {1, 1, 3, 3}, v), y);
    CHECK(y.to_host(ctx) == std::vector<float>{1, 3, 7, 9});
    ops::pool2d<reference>({ops::pool_kind::avg_include_pad, 2, 2, 2, 2, 1, 1}).forward(ctx, testing::make(ctx, {1, 1, 3, 3}, v), y);
    CHECK(y.to_host(ctx) == std::vector<float>{0.25f, (2 + 3) / 4.0f, (4 + 7) / 4.0f, (5 + 6 + 8 + 9) / 4.0f});
    ops::pool2d<reference>({ops::pool_kind::avg_exclude_pad, 2, 2, 2, 2, 1, 1}).forward(ctx, testing::make(ctx, {1, 1, 3, 3}, v), y);
    CHECK(y.to_host(ctx) == std::vector<float>{1, 2.5f, 5.5f, 7});
}

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("relu, add, pool2d, global_avg_pool equal the reference", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    std::uint64_t seed = 500;
    for (const auto& xs : pool_shapes) {
        CAPTURE(xs);
        context<B> ctx;
        context<reference> rctx;
        const auto xv = random_values(xs.numel(), seed), x2v = random_values(xs.numel(), seed + 1),
                   dyv = random_values(xs.numel(), seed + 2);
        // relu
        {
            tensor<B> y, dx;
            tensor<reference> yr, dxr;
            ops::relu<B> op;
            ops::relu<reference> ref;
            op.forward(ctx, testing::make(ctx, xs, xv), y);
            ref.forward(rctx, testing::make(rctx, xs, xv), yr);
            CHECK(y.to_host(ctx) == yr.to_host(rctx));
            op.backward(ctx, testing::make(ctx, xs, xv), testing::make(ctx, xs, dyv), dx);
            ref.backward(rctx, testing::make(rctx, xs, xv), testing::make(rctx, xs, dyv), dxr);
            CHECK(dx.to_host(ctx) == dxr.to_host(rctx));
            tensor<B> dx_from_y;  // the output stands in for the input: same sign
            op.backward(ctx, y, testing::make(ctx, xs, dyv), dx_from_y);
            CHECK(dx_from_y.to_host(ctx) == dxr.to_host(rctx));
        }
        // add with its ReLU fused (a ResNet block's join): max(a + b, 0) in one pass
        {
            tensor<B> y;
            tensor<reference> yr;
            ops::add<B>().forward_relu(ctx, testing::make(ctx, xs, xv), testing::make(ctx, xs, x2v), y);
            ops::add<reference>().forward_relu(rctx, testing::make(rctx, xs, xv), testing::make(rctx, xs, x2v), yr);
            std::vector<float> want(xv.size());
            std::size_t zeros = 0;
            for (std::size_t i = 0; i < want.size(); ++i) {
                want[i] = std::max(xv[i] + x2v[i], 0.0f);
                zeros += want[i] == 0.0f;
            }
            CHECK(zeros > want.size() / 4);  // both sides of the ReLU are exercised
            CHECK(zeros < want.size() * 3 / 4);
            CHECK(yr.to_host(rctx) == want);
            CHECK(y.to_host(ctx) == want);
        }
        // add, also in place (acc += x)
        {
            auto a = testing::make(ctx, xs, xv), b = testing::make(ctx, xs, x2v);
            tensor<B> y;
            ops::add<B> op;
            op.forward(ctx, a, b, y);
            std::vector<float> want(xv.size());
            for (std::size_t i = 0; i < want.size(); ++i) want[i] = xv[i] + x2v[i];
            CHECK(y.to_host(ctx) == want);
            op.forward(ctx, a, b, a);
            CHECK(a.to_host(ctx) == want);
            op.forward(ctx, a, b, b);
            for (std::size_t i = 0; i < want.size(); ++i) want[i] += x2v[i];
            testing::expect_close(b.to_host(ctx), want, 1e-6, 0, "add in place");
#if MICLE_HAS_ONEDNN
            if constexpr (std::is_same_v<B, onednn>) {  // sources in two layouts (NHWC + blocked, as after small_map_conv)
                using tag = dnnl::memory::format_tag;
                const auto f32 = dnnl::memory::data_type::f32;
                auto an = testing::make(ctx, xs, xv).to_layout(ctx, dnnl::memory::desc(onednn_detail::to_dims(xs), f32, tag::nhwc));
                auto bb = testing::make(ctx, xs, x2v).to_layout(ctx, dnnl::memory::desc(onednn_detail::to_dims(xs), f32, tag::nChw8c));
                tensor<B> ym;
                op.forward(ctx, an, bb, ym);
                CHECK(ym.desc() == an.desc());
                for (std::size_t i = 0; i < want.size(); ++i) want[i] = xv[i] + x2v[i];
                CHECK(ym.to_host(ctx) == want);
                op.forward(ctx, an, bb, bb);  // in place into the blocked one
                CHECK(bb.to_host(ctx) == want);
            }
#endif
        }
        // pooling
        for (const auto& p : pool_cases) {
            CAPTURE(int(p.kind));
            CAPTURE(p.kernel_h);
            tensor<B> y, dx;
            tensor<reference> yr, dxr;
            ops::pool2d<B> op(p);
            ops::pool2d<reference> ref(p);
            op.forward(ctx, testing::make(ctx, xs, xv), y);
            ref.forward(rctx, testing::make(rctx, xs, xv), yr);
            testing::expect_close(y.to_host(ctx), yr.to_host(rctx), 1e-6, 1e-7, "pool y");
            const auto g = random_values(yr.numel(), seed + 3);
            op.backward(ctx, testing::make(ctx, yr.shape(), g), dx);
            ref.backward(rctx, testing::make(rctx, yr.shape(), g), dxr);
            testing::expect_close(dx.to_host(ctx), dxr.to_host(rctx), 1e-5, 1e-6, "pool dx");
        }
        // global average pooling, fed from a blocked layout as it is after a convolution
        {
            tensor<B> y, dx;
            tensor<reference> yr, dxr;
            ops::global_avg_pool<B> op;
            ops::global_avg_pool<reference> ref;
            op.forward(ctx, testing::make(ctx, xs, xv), y);
            ref.forward(rctx, testing::make(rctx, xs, xv), yr);
            CHECK(y.shape() == shape{xs[0], xs[1]});
            testing::expect_close(y.to_host(ctx), yr.to_host(rctx), 1e-5, 1e-6, "gap y");
            const auto g = random_values(yr.numel(), seed + 4);
            op.backward(ctx, testing::make(ctx, yr.shape(), g), dx);
            ref.backward(rctx, testing::make(rctx, yr.shape(), g), dxr);
            testing::expect_close(dx.to_host(ctx), dxr.to_host(rctx), 1e-5, 1e-6, "gap dx");
        }
        seed += 10;
    }
}
#endif

#if MICLE_HAS_ONEDNN
TEST_CASE("relu, pool2d, global_avg_pool<onednn> keep a blocked input layout") {
    using tag = dnnl::memory::format_tag;
    context<onednn> ctx;
    const shape xs{2, 20, 9, 9};
    const auto xv = random_values(xs.numel(), 9);
    auto x = testing::make(ctx, xs, xv)
                 .to_layout(ctx, dnnl::memory::desc(onednn_detail::to_dims(xs), dnnl::memory::data_type::f32, tag::nChw16c));
    tensor<onednn> y, p, dx, g;
    ops::relu<onednn>().forward(ctx, x, y);
    CHECK(y.desc() == x.desc());
    ops::pool2d<onednn> pool({ops::pool_kind::max, 3, 3, 2, 2, 1, 1});
    pool.forward(ctx, y, p);
    CHECK(p.desc().data.format_desc.blocking.inner_nblks == 1);
    pool.backward(ctx, p, dx);
    CHECK(dx.desc() == y.desc());
    ops::global_avg_pool<onednn> gap;
    gap.forward(ctx, p, g);
    CHECK(g.is_plain());
    CHECK(g.shape() == shape{2, 20});
}
#endif

TEST_CASE_TEMPLATE("relu, add, pooling: bad input names the op and the shapes", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    auto x = tensor<B>::zeros(ctx, shape{2, 3, 4, 4});
    auto x2 = tensor<B>::zeros(ctx, shape{2, 3, 4, 5});
    auto xbf = tensor<B>::zeros(ctx, shape{2, 3, 4, 4}, dtype::bf16);
    auto x2d = tensor<B>::zeros(ctx, shape{2, 3});
    tensor<B> y, dx;
    CHECK_THROWS_WITH_AS(ops::add<B>().forward(ctx, x, x2, y),
                         "add: a [2, 3, 4, 4] and b [2, 3, 4, 5] must have the same shape", shape_error);
    CHECK_THROWS_WITH_AS(ops::add<B>().forward_relu(ctx, x, x2, y),
                         "add_relu: a [2, 3, 4, 4] and b [2, 3, 4, 5] must have the same shape", shape_error);
    if constexpr (!std::is_same_v<B, ::micle::reference>) {  // bf16 activations: mixed precision
        CHECK_THROWS_WITH_AS(ops::add<B>().forward(ctx, x, xbf, y), "add: a is f32 but b is bf16", shape_error);
    } else {
        CHECK_THROWS_WITH_AS(ops::relu<B>().forward(ctx, xbf, y),
                             "relu: input has dtype bf16, but this op computes in f32 only", shape_error);
    }
    CHECK_THROWS_WITH_AS(ops::pool2d<B>({ops::pool_kind::max, 5, 5, 1, 1, 0, 0}).forward(ctx, x, y),
                         "pool2d: input [2, 3, 4, 4] is too small for kernel 5x5", shape_error);
    CHECK_THROWS_WITH_AS(ops::pool2d<B>({ops::pool_kind::max, 2, 2, 0, 2, 0, 0}).forward(ctx, x, y),
                         doctest::Contains("stride must be positive"), value_error);
    CHECK_THROWS_WITH_AS(ops::global_avg_pool<B>().forward(ctx, x2d, y),
                         "global_avg_pool: input must have rank 4, got shape [2, 3]", shape_error);
    CHECK_THROWS_WITH_AS(ops::pool2d<B>(ops::pool2d_params{}).backward(ctx, x, dx), doctest::Contains("before forward"), shape_error);
}
