// Data-parallel training under mpirun (ctest runs this at -np 1, 2 and 3): the MPI
// collectives with rank-dependent data; NT-Xent over gathered embeddings against the
// single-process loss on the whole batch (loss and dL/dz, with and without patient groups
// that span ranks); and R ranks x B/R learner steps, and fit, against 1 process x B:
// the loss, every parameter gradient and every parameter after 5 SGD and LARS steps,
// with cross-replica batch norm, on the reference backend and on oneDNN.
//
// Every rank also computes the single-process result itself (the models are tiny), so
// every rank checks its own slice against it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "learners.hpp"
#include "micle/contrastive/nt_xent.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/labeled.hpp"
#include "micle/dist/mpi.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/supervised_learner.hpp"
#include "run_fixtures.hpp"
#include "testing.hpp"

using namespace micle;

namespace {

dist::mpi_communicator& world() {
    static dist::mpi_communicator c;
    return c;
}

constexpr std::int64_t pairs = 6;  // global pairs per batch: split 6, 3 + 3 or 2 + 2 + 2

/// Rows of a global [2N, ...] view batch (first views, then second views) that are rank
/// r's [2n, ...] batch: its n first views, then its n second views.
std::vector<float> my_rows(const std::vector<float>& global, std::int64_t row_size, int rank, int ranks) {
    const auto s = dist::slice_of(pairs, rank, ranks);
    std::vector<float> out;
    for (std::int64_t half = 0; half < 2; ++half)
        out.insert(out.end(), global.begin() + (half * pairs + s.begin) * row_size,
                   global.begin() + (half * pairs + s.end) * row_size);
    return out;
}
std::vector<std::int64_t> my_ids(const std::vector<std::int64_t>& global, int rank, int ranks) {
    const auto s = dist::slice_of(pairs, rank, ranks);
    std::vector<std::int64_t> out;
    for (std::int64_t half = 0; half < 2; ++half)
        out.insert(out.end(), global.begin() + half * pairs + s.begin, global.begin() + half * pairs + s.end);
    return out;
}

/// The patients of the 6 pairs, 0 1 0 2 1 2: at 2 ranks (pairs 0-2 | 3-5) and at 3 ranks
/// (0-1 | 2-3 | 4-5) patients have pairs on two ranks.
std::vector<std::int64_t> patient_groups() {
    const std::int64_t patient[pairs] = {0, 1, 0, 2, 1, 2};
    std::vector<std::int64_t> g;
    for (int half = 0; half < 2; ++half) g.insert(g.end(), patient, patient + pairs);
    return g;
}

}  // namespace

TEST_CASE("mpi collectives with rank-dependent data") {
    auto& c = world();
    const int r = c.rank(), R = c.size();
    CHECK(c.description().find("MPI, rank ") == 0);
    std::vector<float> f = {float(r + 1), float(10 * r)};
    c.all_reduce_sum(std::span<float>(f));
    CHECK(f[0] == float(R * (R + 1) / 2));
    CHECK(f[1] == float(10 * R * (R - 1) / 2));
    std::vector<double> d = {0.5 * r};
    c.all_reduce_sum(std::span<double>(d));
    CHECK(d[0] == doctest::Approx(0.25 * R * (R - 1)));
    const std::vector<std::int64_t> mine = {r, 100 + r, -r};
    std::vector<std::int64_t> all(3 * std::size_t(R));
    c.all_gather(std::span<const std::int64_t>(mine), std::span<std::int64_t>(all));
    for (int k = 0; k < R; ++k) {  // rank-major
        CHECK(all[std::size_t(3 * k)] == k);
        CHECK(all[std::size_t(3 * k + 1)] == 100 + k);
        CHECK(all[std::size_t(3 * k + 2)] == -k);
    }
    // reduce_scatter: rank k contributes (k + 1) * (j + 1) at flat index j; block r of the sum.
    std::vector<float> in(2 * std::size_t(R)), out(2);
    for (std::size_t j = 0; j < in.size(); ++j) in[j] = float((r + 1) * (j + 1));
    c.reduce_scatter_sum(std::span<const float>(in), std::span<float>(out));
    const float ranks_sum = float(R * (R + 1) / 2);
    CHECK(out[0] == ranks_sum * float(2 * r + 1));
    CHECK(out[1] == ranks_sum * float(2 * r + 2));
    std::vector<float> b = {r == 0 ? 42.0f : -1.0f, float(r)};
    c.broadcast(std::span<float>(b), 0);
    CHECK(b[0] == 42.0f);
    CHECK(b[1] == 0.0f);
    c.barrier();
    CHECK_THROWS_AS(c.all_gather(std::span<const float>(f), std::span<float>(f).first(1)), value_error);  // R x 2 values needed
    // slices of a global batch cover it once, in rank order
    std::int64_t next = 0;
    for (int k = 0; k < R; ++k) {
        const auto s = dist::slice_of(7, k, R);
        CHECK(s.begin == next);
        next = s.end;
    }
    CHECK(next == 7);
}

#if MICLE_HAS_ONEDNN
TEST_CASE("gradient_buckets on oneDNN: layouts alike on every rank are summed as they lie, others in plain order") {
    // Ranks pick their weights' layouts for their own slice of the batch, so they can
    // differ. Three parameters, and buckets of {bias, b} and {a}: `a` is blocked
    // (ABcd16b16a, padded from 20 x 3 to 32 x 16) on every rank; `b` is plain on rank 0,
    // blocked on rank 1 and [O,kh,kw,I] on rank 2. Rank r's gradient is (r + 1) x a
    // pattern + r in plain order, so the sum is known; it must come back in each rank's
    // own layout with the blocked padding still zero, armed (started from grad_written)
    // and not.
    using md = dnnl::memory::desc;
    using tag = dnnl::memory::format_tag;
    constexpr auto f32 = dnnl::memory::data_type::f32;
    auto& c = world();
    context<onednn> ctx;
    const shape ws{20, 3, 3, 3};
    const dnnl::memory::dims d{20, 3, 3, 3};
    const md plain(d, f32, tag::abcd), blocked(d, f32, tag::ABcd16b16a),
        ohwi(d, f32, tag::acdb);
    const md mine = c.rank() % 3 == 0 ? plain : c.rank() % 3 == 1 ? blocked : ohwi;
    auto make = [&](const md& m) {
        auto t = tensor<onednn>::empty(ctx, m);
        t.fill(ctx, 0.0f);
        return t;
    };
    nn::parameter<onednn> a{"a", make(blocked), make(blocked)}, b{"b", make(mine), make(mine)},
        bias{"bias", make(md({20}, f32, tag::a)), make(md({20}, f32, tag::a))};
    std::vector<nn::parameter<onednn>*> params{&a, &b, &bias};
    dist::gradient_buckets<onednn> buckets(params, (540 + 10) * sizeof(float));
    REQUIRE(buckets.buckets() == 2);
    auto pattern = [](std::size_t n, float scale, float shift) {
        std::vector<float> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = scale * float(int(i % 17) - 8) * 0.125f + shift;
        return v;
    };
    const float ranks = float(c.size()), rank_sum = ranks * (ranks - 1) / 2, scale_sum = ranks * (ranks + 1) / 2;
    for (const bool armed : {false, true}) {
        CAPTURE(armed);
        if (armed) buckets.arm(ctx, c);
        for (int step = 0; step < 2; ++step) {
            for (auto* p : {&bias, &b, &a}) {  // backward's order
                p->grad.assign(ctx, pattern(std::size_t(p->value.numel()), float(c.rank() + 1), float(c.rank())));
                p->grad_written();
            }
            buckets.all_reduce(ctx, c);
            CHECK(buckets.buckets_as_laid_out() == (c.size() == 1 ? 2u : 1u));
            for (auto* p : params) {
                CAPTURE(p->name);
                const auto want = pattern(std::size_t(p->value.numel()), scale_sum, rank_sum);
                CHECK(p->grad.desc() == p->value.desc());
                const auto got = p->grad.to_host(ctx);
                REQUIRE(got.size() == want.size());
                double worst = 0, all = 0, all_want = 0;
                for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
                for (float v : p->grad.host_buffer()) all += double(v) * v;  // padding included: squares cannot cancel
                for (float v : want) all_want += double(v) * v;
                CHECK(worst == 0.0);  // small multiples of 1/8: exact in any order
                CHECK(all == doctest::Approx(all_want).epsilon(1e-9));
            }
        }
        buckets.disarm();
    }
}
#endif

TEST_CASE_TEMPLATE("nt_xent over the ranks: the loss and dL/dz of the whole batch, patients across ranks", B, MICLE_ALL_BACKENDS) {
    auto& c = world();
    context<B> ctx;
    constexpr std::int64_t D = 5;
    const auto z = testing::random_values(2 * pairs * D, 11);
    for (const bool grouped : {false, true}) {
        CAPTURE(grouped);
        const auto groups = grouped ? patient_groups() : std::vector<std::int64_t>{};
        contrastive::nt_xent<B> whole({0.2f});
        const float want_loss = whole.forward(ctx, testing::make(ctx, shape{2 * pairs, D}, z), groups);
        const auto want = my_rows(whole.backward(ctx).to_host(ctx), D, c.rank(), c.size());

        contrastive::nt_xent<B> shared({0.2f});
        shared.distribute(&c);
        const auto mine = my_rows(z, D, c.rank(), c.size());
        const auto my_groups = grouped ? my_ids(groups, c.rank(), c.size()) : std::vector<std::int64_t>{};
        const float loss = shared.forward(ctx, testing::make(ctx, shape{std::int64_t(mine.size()) / D, D}, mine), my_groups);
        CHECK(loss == doctest::Approx(want_loss).epsilon(1e-5));
        testing::expect_close(shared.backward(ctx).to_host(ctx), want, 1e-4, 1e-6, "dL/dz of this rank's rows");

        // The bug this guards against: each rank keeping only its own rows of its own
        // share's gradient (no reduce-scatter). That gradient misses every term where these
        // rows are another rank's negatives, and must be far from the true one - so the
        // check above catches it. (Checked by hand too: replacing reduce_scatter_sum with a
        // copy of the local block in contrastive::gather_rows::backward fails the check above.)
        if (c.size() > 1) {
            std::vector<float> gathered(std::size_t(2 * pairs * D));
            c.all_gather(std::span<const float>(mine), std::span<float>(gathered));
            std::vector<std::int64_t> all_groups;
            if (grouped) all_groups = contrastive::gather_ids(c, my_groups);
            ops::l2_normalize<B> norm;
            tensor<B> zn, dzn, dz_all, dz;
            norm.forward(ctx, testing::make(ctx, shape{2 * pairs, D}, gathered), zn);
            ops::nt_xent<B> op({0.2f});
            const std::int64_t m = std::int64_t(mine.size()) / D;
            op.forward(ctx, zn, all_groups, ops::nt_xent_anchors{m * c.rank(), m, 2 * pairs});
            op.backward(ctx, dzn);
            norm.backward(ctx, dzn, dz_all);
            const auto partial = dz_all.to_host(ctx);
            const std::vector<float> local_only(partial.begin() + m * c.rank() * D, partial.begin() + m * (c.rank() + 1) * D);
            double worst = 0, scale = 0;
            for (std::size_t i = 0; i < want.size(); ++i) {
                worst = std::max(worst, std::abs(double(local_only[i]) - want[i]));
                scale = std::max(scale, std::abs(double(want[i])));
            }
            CHECK(worst > 0.05 * scale);  // 20% to 50% of the gradient's scale here: not a rounding difference
        }
    }
}

namespace {

template <class L>
typename L::config dp_config() {
    auto cfg = testing::tiny_config<L>();
    cfg.backbone.in_channels = 1;
    cfg.head = heads::projection_config::simclr_v2();  // with batch norm in the head too
    cfg.head.hidden = 16;
    cfg.head.out = 8;
    return cfg;
}

template <class L, class B>
std::vector<std::vector<float>> values(L& l, context<B>& ctx, bool grads) {
    std::vector<std::vector<float>> out;
    for (auto* p : l.state().params) out.push_back((grads ? p->grad : p->value).to_host(ctx));
    if (!grads)
        for (auto* b : l.state().buffers) out.push_back(b->value.to_host(ctx));
    return out;
}

/// Parameters and buffers within rtol 1e-4 and 2e-6 absolute: a few steps of float
/// rounding in another order (~1e-6) on values of ~0.1-1, and on biases and running means
/// that are themselves ~1e-4.
void expect_same_model(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want,
                       const char* what) {
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
        double worst = 0;
        for (std::size_t i = 0; i < want[k].size(); ++i)
            worst = std::max(worst, std::abs(double(got[k][i]) - want[k][i]) - (1e-4 * std::abs(double(want[k][i])) + 2e-6));
        INFO(what << ": parameter or buffer " << k << ": worst excess over the tolerance " << worst);
        CHECK(worst <= 0);
    }
}

/// 5 steps of the same global batches. The learning rate is small: the comparison is of
/// exact arithmetic done in another order (6 samples' sums vs 12), and a ReLU input within
/// rounding of zero flips with that order, which changes the gradient by a step, not by a
/// rounding error. Far from such kinks (as at these seeds) every rank agrees to ~1e-6.
template <class L, class B>
void five_steps_agree(context<B>& ctx, const typename L::config& cfg, float lr, bool overlap = true) {
    auto& c = world();
    constexpr std::int64_t side = 16, hw = side * side;
    L one(ctx, cfg), many(ctx, cfg);
    dist::options opt;
    opt.bucket_bytes = 16 << 10;  // several buckets, each started as soon as backward wrote its gradients
    opt.overlap = overlap;
    many.distribute(c, opt);
    const auto w0 = values(one, ctx, false);
    const auto groups = patient_groups();
    for (int step = 0; step < 5; ++step) {
        CAPTURE(step);
        const auto views = testing::random_values(2 * pairs * hw, 100 + std::uint64_t(step));
        const float want = one.step(testing::make(ctx, shape{2 * pairs, 1, side, side}, views), groups, lr);
        const auto mine = my_rows(views, hw, c.rank(), c.size());
        const auto my_groups = my_ids(groups, c.rank(), c.size());
        const float got =
            many.step(testing::make(ctx, shape{std::int64_t(mine.size()) / hw, 1, side, side}, mine), my_groups, lr);
        CHECK(got == doctest::Approx(want).epsilon(1e-4));
        if (c.size() > 1) {  // with overlap, every bucket's all-reduce started during the backward pass
            REQUIRE(many.gradient_sync() != nullptr);
            CHECK(many.gradient_sync()->buckets() >= 3);
            CHECK(many.gradient_sync()->started_during_backward() == (overlap ? many.gradient_sync()->buckets() : 0u));
        }
        if (step == 0) {
            // Every parameter's gradient from the same parameters, summed over the ranks: rtol
            // 1e-4, and an absolute floor of 1e-4 of the tensor's largest gradient (an element
            // far below it is what is left when large terms cancel, and carries their rounding).
            const auto g1 = values(one, ctx, true), gm = values(many, ctx, true);
            for (std::size_t k = 0; k < g1.size(); ++k)
                testing::expect_close(gm[k], g1[k], 1e-4, 1e-4, many.state().params[k]->name + " gradient");
        }
    }
    const auto w1 = values(one, ctx, false), wm = values(many, ctx, false);
    double moved = 0;
    for (std::size_t k = 0; k < w1.size(); ++k)
        for (std::size_t i = 0; i < w1[k].size(); ++i) moved = std::max(moved, double(std::abs(w1[k][i] - w0[k][i])));
    expect_same_model(wm, w1, "after 5 steps");
    CHECK(moved > 1e-3);  // the 5 updates moved the model far beyond the tolerance: the comparison has teeth
}

}  // namespace

TEST_CASE_TEMPLATE("R ranks x B/R steps train what 1 process x B trains (global batch norm, MICLe groups, SGD and LARS)", B,
                   MICLE_ALL_BACKENDS) {
    context<B> ctx;
    SUBCASE("sgd") { five_steps_agree<testing::simclr_sgd<B>>(ctx, dp_config<testing::simclr_sgd<B>>(), 4e-4f); }
    SUBCASE("lars") { five_steps_agree<testing::simclr_lars<B>>(ctx, dp_config<testing::simclr_lars<B>>(), 4e-4f); }
    SUBCASE("sgd, all-reduce after backward") {
        five_steps_agree<testing::simclr_sgd<B>>(ctx, dp_config<testing::simclr_sgd<B>>(), 4e-4f, false);
    }
}

TEST_CASE_TEMPLATE("local batch norm: R ranks compute what R replicas, each normalising its own slice, compute in one process",
                   B, MICLE_ALL_BACKENDS) {
    // With global_batch_norm = false each rank normalises its own B/R pairs (PyTorch DDP
    // without SyncBatchNorm). The one-process computation that is the same: R copies of
    // the model, copy r running on rank r's slice, the NT-Xent of the whole batch over
    // their embeddings, and the gradients of the copies summed. Every rank builds that
    // reference itself and checks the loss, every parameter gradient, and its own running
    // statistics (rank r's are copy r's).
    auto& c = world();
    const int R = c.size();
    context<B> ctx;
    using L = testing::simclr_sgd<B>;
    const auto cfg = dp_config<L>();
    constexpr std::int64_t side = 16, hw = side * side;
    const auto views = testing::random_values(2 * pairs * hw, 300);
    const auto groups = patient_groups();
    const float lr = 4e-4f;

    std::vector<std::unique_ptr<L>> copies;
    std::vector<tensor<B>> inputs;         // alive until backward: the backbone keeps a reference
    std::vector<std::vector<float>> z_of;  // copy r's [2n, D] projections
    inputs.reserve(std::size_t(R));
    for (int r = 0; r < R; ++r) {
        copies.push_back(std::make_unique<L>(ctx, cfg));
        auto& m = *copies.back();
        const auto rows = my_rows(views, hw, r, R);
        inputs.push_back(testing::make(ctx, shape{std::int64_t(rows.size()) / hw, 1, side, side}, rows));
        z_of.push_back(m.head().forward(ctx, m.backbone().forward(ctx, inputs.back(), true), true).to_host(ctx));
    }
    const std::int64_t D = std::int64_t(z_of[0].size()) / (2 * dist::slice_of(pairs, 0, R).count());
    std::vector<float> z(std::size_t(2 * pairs * D));  // the whole batch: first views, then second views
    for (int r = 0; r < R; ++r) {
        const auto s = dist::slice_of(pairs, r, R);
        for (std::int64_t half = 0; half < 2; ++half)
            std::copy_n(z_of[std::size_t(r)].begin() + half * s.count() * D, s.count() * D,
                        z.begin() + (half * pairs + s.begin) * D);
    }
    contrastive::nt_xent<B> loss(cfg.loss);
    const float want_loss = loss.forward(ctx, testing::make(ctx, shape{2 * pairs, D}, z), groups);
    const auto dz = loss.backward(ctx).to_host(ctx);
    std::vector<std::vector<float>> want_grads;
    for (int r = 0; r < R; ++r) {
        auto& m = *copies[std::size_t(r)];
        const auto s = dist::slice_of(pairs, r, R);
        std::vector<float> mine;
        for (std::int64_t half = 0; half < 2; ++half)
            mine.insert(mine.end(), dz.begin() + (half * pairs + s.begin) * D, dz.begin() + (half * pairs + s.end) * D);
        m.backbone().backward(ctx, m.head().backward(ctx, testing::make(ctx, shape{2 * s.count(), D}, mine)));
        const auto g = values(m, ctx, true);
        if (want_grads.empty()) want_grads.assign(g.size(), {});
        for (std::size_t k = 0; k < g.size(); ++k) {
            want_grads[k].resize(g[k].size(), 0.0f);
            for (std::size_t i = 0; i < g[k].size(); ++i) want_grads[k][i] += g[k][i];
        }
    }

    L many(ctx, cfg);
    dist::options opt;
    opt.global_batch_norm = false;
    many.distribute(c, opt);
    const auto rows = my_rows(views, hw, c.rank(), R);
    const float got = many.step(testing::make(ctx, shape{std::int64_t(rows.size()) / hw, 1, side, side}, rows),
                                my_ids(groups, c.rank(), R), lr);
    CHECK(got == doctest::Approx(want_loss).epsilon(1e-4));
    const auto g = values(many, ctx, true);
    REQUIRE(g.size() == want_grads.size());
    for (std::size_t k = 0; k < g.size(); ++k)
        testing::expect_close(g[k], want_grads[k], 1e-4, 1e-4, many.state().params[k]->name + " gradient");
    auto& mine = *copies[std::size_t(c.rank())];
    for (std::size_t k = 0; k < many.state().buffers.size(); ++k)
        testing::expect_close(many.state().buffers[k]->value.to_host(ctx), mine.state().buffers[k]->value.to_host(ctx), 1e-5,
                              1e-6, many.state().buffers[k]->name);
    if (R > 1) {  // and it is not what global batch norm computes: the option changes the step
        L global(ctx, cfg);
        global.distribute(c);
        global.step(testing::make(ctx, shape{std::int64_t(rows.size()) / hw, 1, side, side}, rows), my_ids(groups, c.rank(), R), lr);
        const auto gg = values(global, ctx, true);
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < gg[0].size(); ++i) {
            worst = std::max(worst, std::abs(double(gg[0][i]) - want_grads[0][i]));
            scale = std::max(scale, std::abs(double(want_grads[0][i])));
        }
        CHECK(worst > 0.01 * scale);
    }
}

TEST_CASE_TEMPLATE("fit over the ranks: each takes its slice of the global batch, rank 0 checkpoints - same weights", B,
                   MICLE_ALL_BACKENDS) {
    auto& c = world();
    context<B> ctx;
    const auto images = testing::tiny_images(12);
    const contrastive::augmented_views views(images, data::augment_config::simclr(8), 1, 5);
    using L = testing::simclr_lars<B>;
    train::fit_options opt;
    opt.epochs = 2;
    opt.batch = pairs;  // 2 steps an epoch
    opt.lr = 4e-4f;  // small, as in five_steps_agree
    L one(ctx, dp_config<L>()), many(ctx, dp_config<L>());
    const auto w0 = values(one, ctx, false);
    train::fit(one, views, opt);
    // A run directory named by rank 0 (a shared file system); here the other ranks get one
    // of their own beside it, which must stay empty: only rank 0 writes checkpoints.
    std::string dir = testing::temp_dir().path.string();
    std::vector<std::int64_t> name(dir.begin(), dir.end());
    name.resize(512, 0);
    c.broadcast(std::span<std::int64_t>(name), 0);
    dir.clear();
    for (auto ch : name)
        if (ch != 0) dir.push_back(char(ch));
    opt.run_dir = c.rank() == 0 ? dir : dir + "-rank" + std::to_string(c.rank());
    many.distribute(c);
    const auto r = train::fit(many, views, opt);
    CHECK(r.steps_done == 4);
    c.barrier();
    if (c.rank() == 0) {
        CHECK(train::latest_checkpoint(opt.run_dir) == opt.run_dir / "ckpt-000002");
    } else {
        CAPTURE(opt.run_dir);
        CHECK((!std::filesystem::exists(opt.run_dir) || std::filesystem::is_empty(opt.run_dir)));
    }
    const auto w1 = values(one, ctx, false);
    expect_same_model(values(many, ctx, false), w1, "after fit");
    double moved = 0;
    for (std::size_t k = 0; k < w1.size(); ++k)
        for (std::size_t i = 0; i < w1[k].size(); ++i) moved = std::max(moved, double(std::abs(w1[k][i] - w0[k][i])));
    CHECK(moved > 1e-3);  // the 4 steps moved the model far beyond the tolerance: the comparison has teeth
    c.barrier();
    std::filesystem::remove_all(opt.run_dir);
}

TEST_CASE_TEMPLATE("fine-tuning over the ranks: uneven slices of a short last batch, global batch norm - same weights", B,
                   MICLE_ALL_BACKENDS) {
    // 16 labelled images in batches of 6: 6, 6 and a last batch of 4, which 3 ranks split
    // 2 + 1 + 1. Each rank's gradient counts with its share of the batch, so the update
    // is the one-process update however the images fall. (Checked: without that weighting
    // in supervised_learner the weights differ by 0.02-0.04 at 2 and 3 ranks, and this fails.)
    auto& c = world();
    context<B> ctx;
    using L = supervised_learner<B, models::resnet, optim::sgd>;
    typename L::config cfg;
    cfg.backbone.depth = 18;
    cfg.backbone.base_channels = 4;
    cfg.backbone.stem = models::stem_kind::small;
    cfg.backbone.in_channels = 1;
    cfg.classes = 3;
    cfg.head_lr_scale = 3.0f;
    cfg.seed = 4;
    const data::labeled_images source(testing::tiny_images(16), data::augment_config::finetune(8), 1, 6);
    train::fit_options opt;
    opt.epochs = 2;
    opt.batch = 6;
    opt.lr = 4e-4f;  // small, as in five_steps_agree
    opt.warmup_steps = 0;
    L one(ctx, cfg), many(ctx, cfg);
    const auto w0 = values(one, ctx, false);
    const auto r1 = train::fit(one, source, opt);
    many.distribute(c);
    const auto rm = train::fit(many, source, opt);
    CHECK(r1.steps_done == 6);
    CHECK(rm.steps_done == 6);
    const auto w1 = values(one, ctx, false);
    expect_same_model(values(many, ctx, false), w1, "after fine-tuning");
    double moved = 0;
    for (std::size_t k = 0; k < w1.size(); ++k)
        for (std::size_t i = 0; i < w1[k].size(); ++i) moved = std::max(moved, double(std::abs(w1[k][i] - w0[k][i])));
    CHECK(moved > 1e-3);  // far beyond the tolerance: the comparison has teeth

    // A last batch with fewer images than ranks is left out of a data-parallel epoch.
    const data::labeled_images fourteen(testing::tiny_images(14), data::augment_config::finetune(8), 1, 6);
    L again(ctx, cfg);
    again.distribute(c);
    opt.epochs = 1;
    CHECK(train::fit(again, fourteen, opt).steps_done == (c.size() > 2 ? 2 : 3));
}
