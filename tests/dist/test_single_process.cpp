// The data-parallel pieces in one process (no MPI needed): the single_process
// communicator, cross-replica batch norm against ops::batch_norm (forward, running
// statistics and backward, with and without the fused ReLU), and NT-Xent's anchor shares
// summing to the whole loss and gradient.
#include <vector>

#include "micle/nn/cross_replica_batch_norm.hpp"
#include "micle/core/communicator.hpp"
#include "testing.hpp"

using namespace micle;

TEST_CASE("single_process: rank 0 of 1, collectives are copies") {
    dist::single_process c;
    CHECK(c.rank() == 0);
    CHECK(c.size() == 1);
    std::vector<float> v = {1, 2}, out(2);
    c.all_reduce_sum(std::span<float>(v));
    CHECK(v == std::vector<float>{1, 2});
    c.all_gather(std::span<const float>(v), std::span<float>(out));
    CHECK(out == v);
    c.reduce_scatter_sum(std::span<const float>(v), std::span<float>(out));
    CHECK(out == v);
    CHECK_THROWS_AS(c.broadcast(std::span<float>(v), 1), value_error);
    CHECK(dist::slice_of(10, 0, 1).count() == 10);
    CHECK(dist::slice_of(10, 2, 3).begin == 7);
}

#if MICLE_HAS_ONEDNN && !defined(MICLE_TEST_GPU_PASS)
// oneDNN's global batch norm runs on its primitives (the host path is for the others).
static_assert(normalises_with_given_statistics<onednn>);
static_assert(!normalises_with_given_statistics<reference>);
#endif

TEST_CASE_TEMPLATE("cross-replica batch norm in one process equals the batch norm op", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    dist::single_process one;
    for (const bool relu : {false, true}) {
        CAPTURE(relu);
        const shape xs{4, 3, 5, 5};
        const auto x = testing::make(ctx, xs, testing::random_values(xs.numel(), 1, -2, 3));
        const auto dy = testing::make(ctx, xs, testing::random_values(xs.numel(), 2));
        const auto gamma = testing::make(ctx, shape{3}, {0.5f, 1.5f, -0.7f});
        const auto beta = testing::make(ctx, shape{3}, {0.2f, -0.3f, 0.1f});
        auto rm1 = testing::make(ctx, shape{3}, {0.1f, 0.2f, 0.3f}), rv1 = testing::make(ctx, shape{3}, {1.0f, 2.0f, 0.5f});
        auto rm2 = rm1.clone(ctx), rv2 = rv1.clone(ctx);
        const ops::batch_norm_params p{1e-5f, 0.1f, relu};
        ops::batch_norm<B> op(p);
        nn::cross_replica_batch_norm<B> global(p);
        tensor<B> y1, y2, dx1, dx2, dg1, dg2, db1, db2;
        op.forward_training(ctx, x, gamma, beta, rm1, rv1, y1);
        global.forward_training(ctx, one, x, gamma, beta, rm2, rv2, y2);
        testing::expect_close(y2.to_host(ctx), y1.to_host(ctx), 1e-5, 1e-6, "y");
        testing::expect_close(rm2.to_host(ctx), rm1.to_host(ctx), 1e-5, 1e-6, "running mean");
        testing::expect_close(rv2.to_host(ctx), rv1.to_host(ctx), 1e-5, 1e-6, "running variance (unbiased)");
        op.backward(ctx, x, dy, gamma, beta, dx1, dg1, db1);
        global.backward(ctx, one, dy, gamma, dx2, dg2, db2);
        testing::expect_close(dx2.to_host(ctx), dx1.to_host(ctx), 1e-4, 1e-5, "dx");
        testing::expect_close(dg2.to_host(ctx), dg1.to_host(ctx), 1e-4, 1e-5, "dgamma");
        testing::expect_close(db2.to_host(ctx), db1.to_host(ctx), 1e-4, 1e-5, "dbeta");
    }
}

TEST_CASE_TEMPLATE("nt_xent: the anchor shares of the ranks sum to the whole loss and gradient", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    // 3 "ranks" of 2 pairs each, laid out rank-major as contrastive::gather_rows stacks them:
    // [a0 a1 b0 b1 | a2 a3 b2 b3 | a4 a5 b4 b5]; the whole batch is [a0..a5 b0..b5].
    constexpr std::int64_t D = 4, n = 2, R = 3, M = 2 * n * R;
    const auto whole_z = testing::random_values(M * D, 5);
    const std::vector<std::int64_t> whole_groups = {0, 1, 0, 2, 1, 2, 0, 1, 0, 2, 1, 2};
    auto whole_row = [&](std::int64_t r, std::int64_t k) { return k < n ? r * n + k : R * n + r * n + (k - n); };
    std::vector<float> stacked;
    std::vector<std::int64_t> stacked_groups;
    for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t k = 0; k < 2 * n; ++k) {
            const auto w = whole_row(r, k);
            stacked.insert(stacked.end(), whole_z.begin() + w * D, whole_z.begin() + (w + 1) * D);
            stacked_groups.push_back(whole_groups[std::size_t(w)]);
        }
    ops::nt_xent<B> whole({0.3f});
    const float want = whole.forward(ctx, testing::make(ctx, shape{M, D}, whole_z), whole_groups);
    tensor<B> dwhole;
    whole.backward(ctx, dwhole);
    const auto dw = dwhole.to_host(ctx);
    double loss = 0;
    std::vector<float> dsum(std::size_t(M * D), 0.0f);
    for (std::int64_t r = 0; r < R; ++r) {
        ops::nt_xent<B> share({0.3f});
        loss += share.forward(ctx, testing::make(ctx, shape{M, D}, stacked), stacked_groups, ops::nt_xent_anchors{2 * n * r, 2 * n, M});
        tensor<B> d;
        share.backward(ctx, d);
        const auto h = d.to_host(ctx);
        for (std::size_t i = 0; i < h.size(); ++i) dsum[i] += h[i];
    }
    CHECK(loss == doctest::Approx(want).epsilon(1e-5));
    std::vector<float> want_stacked;
    for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t k = 0; k < 2 * n; ++k) {
            const auto w = whole_row(r, k);
            want_stacked.insert(want_stacked.end(), dw.begin() + w * D, dw.begin() + (w + 1) * D);
        }
    testing::expect_close(dsum, want_stacked, 1e-4, 1e-6, "summed shares' gradient");
}
