#include <cmath>
#include <numeric>

#include "micle/contrastive/nt_xent.hpp"
#include "testing.hpp"

using namespace micle;

namespace {
/// Rows e_a, e_b, e_a, e_b, ... of the D-dimensional identity.
std::vector<float> unit_rows(const std::vector<int>& axes, int dim) {
    std::vector<float> v(axes.size() * std::size_t(dim), 0.0f);
    for (std::size_t i = 0; i < axes.size(); ++i) v[i * std::size_t(dim) + std::size_t(axes[i])] = 1.0f;
    return v;
}
}  // namespace

TEST_CASE("nt_xent<reference>: values of hand-built embeddings") {
    context<reference> ctx;
    // z = [e0, e1 | e0, e1] (each view equals its positive), temperature 1: every row has
    // positive logit 1 and two negatives with logit 0 -> loss = log(1 + 2/e).
    ops::nt_xent<reference> op(ops::nt_xent_params{1.0f});
    const auto z = tensor<reference>::from_host(ctx, {4, 3}, unit_rows({0, 1, 0, 1}, 3));
    CHECK(op.forward(ctx, z, {}) == doctest::Approx(std::log(1.0 + 2.0 / std::exp(1.0))));

    // Temperature 0.5 doubles the logits: log(1 + 2 e^0 / e^2).
    ops::nt_xent<reference> half(ops::nt_xent_params{0.5f});
    CHECK(half.forward(ctx, z, {}) == doctest::Approx(std::log(1.0 + 2.0 / std::exp(2.0))));

    // Groups: rows 0,1 (and their views 3,4) share patient 7, rows 2/5 are patient 9.
    // z = [e0, e0, e1 | e0, e0, e1]; without the mask, row 0 sees positive (logit 1), one
    // same-patient negative with logit 1 (row 1... and row 4) and two with logit 0 (rows 2, 5):
    // loss_0 = -log(e / (e + e + e + 1 + 1)) for rows 0,1,3,4; rows 2,5: -log(e / (e + 4)).
    const auto z6 = tensor<reference>::from_host(ctx, {6, 2}, unit_rows({0, 0, 1, 0, 0, 1}, 2));
    const double e = std::exp(1.0);
    const double unmasked = (4 * -std::log(e / (3 * e + 2)) + 2 * -std::log(e / (e + 4))) / 6;
    CHECK(op.forward(ctx, z6, {}) == doctest::Approx(unmasked));
    // With the mask, rows 0,1,3,4 keep only the positive and rows 2, 5 of patient 9.
    const std::vector<std::int64_t> groups{7, 7, 9, 7, 7, 9};
    const double masked = (4 * -std::log(e / (e + 2)) + 2 * -std::log(e / (e + 4))) / 6;
    CHECK(op.forward(ctx, z6, groups) == doctest::Approx(masked));
}

TEST_CASE("nt_xent: gradient check, with and without groups, normalisation included") {
    context<reference> ctx;
    const shape zs{6, 4};
    auto zv = testing::random_values(zs.numel(), 1);
    const std::vector<std::int64_t> groups{1, 2, 1, 1, 2, 1};
    for (const bool grouped : {false, true}) {
        CAPTURE(grouped);
        const std::span<const std::int64_t> g = grouped ? std::span<const std::int64_t>(groups) : std::span<const std::int64_t>{};
        contrastive::nt_xent<reference> loss({0.2f, true});
        loss.forward(ctx, tensor<reference>::from_host(ctx, zs, zv), g);
        const auto dz = loss.backward(ctx).to_host(ctx);
        testing::gradcheck(zv, dz, [&] {
            return double(loss.forward(ctx, tensor<reference>::from_host(ctx, zs, zv), g));
        }, "dz", 1e-3, 1e-2, 1e-4);
    }
}

TEST_CASE("nt_xent: invariant to the order of the samples in the batch") {
    context<reference> ctx;
    const std::int64_t n = 5, d = 3;
    const auto zv = testing::random_values(2 * n * d, 2);
    const std::vector<std::int64_t> groups{0, 1, 0, 2, 3, 0, 1, 0, 2, 3};
    // The same permutation applied to both views keeps every pair and group.
    const std::vector<std::int64_t> perm{3, 0, 4, 2, 1};
    std::vector<float> pz(zv.size());
    std::vector<std::int64_t> pg(groups.size());
    for (std::int64_t half = 0; half < 2; ++half)
        for (std::int64_t i = 0; i < n; ++i) {
            const auto src = half * n + perm[std::size_t(i)], dst = half * n + i;
            std::copy_n(zv.begin() + src * d, d, pz.begin() + dst * d);
            pg[std::size_t(dst)] = groups[std::size_t(src)];
        }
    contrastive::nt_xent<reference> a, b;
    const float la = a.forward(ctx, tensor<reference>::from_host(ctx, {2 * n, d}, zv), groups);
    const float lb = b.forward(ctx, tensor<reference>::from_host(ctx, {2 * n, d}, pz), pg);
    CHECK(la == doctest::Approx(lb).epsilon(1e-6));
    const auto ga = a.backward(ctx).to_host(ctx), gb = b.backward(ctx).to_host(ctx);
    for (std::int64_t half = 0; half < 2; ++half)
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t k = 0; k < d; ++k)
                CHECK(gb[std::size_t((half * n + i) * d + k)] ==
                      doctest::Approx(ga[std::size_t((half * n + perm[std::size_t(i)]) * d + k)]).epsilon(1e-5));
}

TEST_CASE("nt_xent: bad input") {
    context<reference> ctx;
    ops::nt_xent<reference> op;
    const auto z3 = tensor<reference>::zeros(ctx, {3, 4});
    const auto z4 = tensor<reference>::zeros(ctx, {4, 4});
    CHECK_THROWS_WITH_AS(op.forward(ctx, z3, {}), "nt_xent: embeddings [3, 4] must have 2N rows (two views of N samples)",
                         shape_error);
    const std::vector<std::int64_t> g{1, 2, 1, 3};
    CHECK_THROWS_WITH_AS(op.forward(ctx, z4, g),
                         "nt_xent: the views 1 and 3 of a positive pair have different groups 2 and 3", value_error);
    CHECK_THROWS_WITH_AS(ops::nt_xent<reference>(ops::nt_xent_params{0.0f}).forward(ctx, z4, {}),
                         "nt_xent: temperature must be positive, got 0", value_error);
}

#ifdef MICLE_FAST_BACKENDS
TEST_CASE_TEMPLATE("nt_xent: loss and gradient equal the reference", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    context<reference> rctx;
    for (const std::int64_t n : {2, 16, 64}) {
        CAPTURE(n);
        const auto zv = testing::random_values(2 * n * 128, std::uint64_t(n), -2.0f, 2.0f);
        std::vector<std::int64_t> groups(std::size_t(2 * n));
        for (std::int64_t i = 0; i < n; ++i) groups[std::size_t(i)] = groups[std::size_t(i + n)] = i / 3;
        for (const bool grouped : {false, true}) {
            const std::span<const std::int64_t> g = grouped ? std::span<const std::int64_t>(groups) : std::span<const std::int64_t>{};
            contrastive::nt_xent<B> fast({0.1f, true});
            contrastive::nt_xent<reference> ref({0.1f, true});
            const float lf = fast.forward(ctx, tensor<B>::from_host(ctx, {2 * n, 128}, zv), g);
            const float lr = ref.forward(rctx, tensor<reference>::from_host(rctx, {2 * n, 128}, zv), g);
            CHECK(lf == doctest::Approx(lr).epsilon(1e-5));
            testing::expect_close(fast.backward(ctx).to_host(ctx), ref.backward(rctx).to_host(rctx), 1e-3, 1e-4, "dz");
        }
    }
}
#endif
