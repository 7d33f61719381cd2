#include "testing.hpp"

using namespace micle;
using testing::random_values;

namespace {

struct conv_case {
    shape x;
    std::int64_t out_channels, kernel, stride, pad;
    bool bias;
    ops::conv2d_params params() const { return {kernel, kernel, stride, stride, pad, pad}; }
    shape w() const { return {out_channels, x[1], kernel, kernel}; }
};

// ResNet-like shapes plus awkward ones: odd sides with stride 2, channel counts that are
// not multiples of 16, a kernel as large as the (padded) input.
const conv_case cases[] = {
    {{2, 3, 7, 7}, 5, 3, 1, 1, true},    {{1, 16, 9, 9}, 32, 3, 2, 1, false}, {{3, 17, 8, 6}, 19, 1, 2, 0, true},
    {{2, 3, 15, 13}, 8, 7, 2, 3, false}, {{2, 32, 7, 7}, 16, 3, 1, 1, false}, {{1, 5, 4, 4}, 3, 5, 1, 2, true},
    {{2, 64, 5, 5}, 24, 1, 1, 0, false},
    // maps no larger than the kernel: ResNet's layer4 at 64 px (3x3 on 2x2), stride 2 on
    // 3x3 (some taps join no input and output), 1x1 (the centre tap alone); without bias
    // conv2d<onednn> runs them as matrix products (small_map_conv), with bias as convolutions
    {{3, 16, 2, 2}, 16, 3, 1, 1, false}, {{2, 8, 2, 2}, 12, 3, 1, 1, true}, {{2, 8, 3, 3}, 6, 3, 2, 1, false},
    {{2, 8, 1, 1}, 6, 3, 1, 1, false},
};

struct conv_result {
    std::vector<float> y, dx, dw, db;
};

template <class B>
conv_result run_conv(const conv_case& c, std::uint64_t seed) {
    context<B> ctx;
    ops::conv2d<B> op(c.params());
    auto x = testing::make(ctx, c.x, random_values(c.x.numel(), seed));
    auto w = testing::make(ctx, c.w(), random_values(c.w().numel(), seed + 1));
    auto b = testing::make(ctx, shape{c.out_channels}, random_values(c.out_channels, seed + 2));
    tensor<B> y, dx, dw, db;
    op.forward(ctx, x, w, c.bias ? &b : nullptr, y);
    auto dy = testing::make(ctx, y.shape(), random_values(y.numel(), seed + 3));
    op.backward_data(ctx, dy, w, dx);
    op.backward_weights(ctx, x, dy, dw, c.bias ? &db : nullptr);
    conv_result r{y.to_host(ctx), dx.to_host(ctx), dw.to_host(ctx), {}};
    if (c.bias) r.db = db.to_host(ctx);
    return r;
}

}  // namespace

TEST_CASE("conv2d<reference>: gradients match central finite differences") {
    using R = reference;
    context<R> ctx;
    const conv_case cs[] = {{{2, 2, 5, 5}, 3, 3, 2, 1, true}, {{1, 3, 4, 3}, 2, 1, 1, 0, true}, {{1, 2, 6, 6}, 2, 3, 1, 0, false}};
    for (const auto& c : cs) {
        CAPTURE(c.x);
        auto xv = random_values(c.x.numel(), 11), wv = random_values(c.w().numel(), 12),
             bv = random_values(c.out_channels, 13);
        ops::conv2d<R> op(c.params());
        tensor<R> y, dx, dw, db;
        auto run = [&] {
            auto x = testing::make(ctx, c.x, xv), w = testing::make(ctx, c.w(), wv), b = testing::make(ctx, shape{c.out_channels}, bv);
            op.forward(ctx, x, w, c.bias ? &b : nullptr, y);
            return y.to_host(ctx);
        };
        run();
        const auto r = random_values(y.numel(), 14);
        auto x = testing::make(ctx, c.x, xv), w = testing::make(ctx, c.w(), wv), dy = testing::make(ctx, y.shape(), r);
        op.backward_data(ctx, dy, w, dx);
        op.backward_weights(ctx, x, dy, dw, c.bias ? &db : nullptr);
        auto loss = [&] { return testing::project(run(), r); };
        testing::gradcheck(xv, dx.to_host(ctx), loss, "dx");
        testing::gradcheck(wv, dw.to_host(ctx), loss, "dw");
        if (c.bias) testing::gradcheck(bv, db.to_host(ctx), loss, "db");
    }
}

#ifdef MICLE_FAST_BACKENDS
// Tolerance: the fast backends accumulate in f32 (reference: f64), so errors grow with the
// reduction length (C*k*k up to 576 here): rtol 1e-4 plus 1e-5 of the result's scale.
TEST_CASE_TEMPLATE("conv2d: forward, backward_data, backward_weights equal the reference", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    std::uint64_t seed = 100;
    for (const auto& c : cases) {
        CAPTURE(c.x);
        CAPTURE(c.kernel);
        CAPTURE(c.stride);
        const auto want = run_conv<reference>(c, seed), got = run_conv<B>(c, seed);
        testing::expect_close(got.y, want.y, 1e-4, 1e-5, "y");
        testing::expect_close(got.dx, want.dx, 1e-4, 1e-5, "dx");
        testing::expect_close(got.dw, want.dw, 1e-4, 1e-5, "dw");
        if (c.bias) testing::expect_close(got.db, want.db, 1e-4, 1e-5, "db");
        seed += 10;
    }
}
#endif

#if MICLE_HAS_ONEDNN
TEST_CASE("conv2d<onednn>: blocked inputs and weights give the same result, dw keeps the weights' layout") {
    using tag = dnnl::memory::format_tag;
    context<onednn> ctx;
    const conv_case c{{2, 17, 9, 9}, 20, 3, 2, 1, true};
    ops::conv2d<onednn> op(c.params()), op2(c.params());
    const auto xv = random_values(c.x.numel(), 1), wv = random_values(c.w().numel(), 2), bv = random_values(20, 3);
    auto x = testing::make(ctx, c.x, xv), w = testing::make(ctx, c.w(), wv), b = testing::make(ctx, shape{20}, bv);
    tensor<onednn> y, y2, dw, dw2, dx, dx2;
    op.forward(ctx, x, w, &b, y);
    // Activations leave in the layout oneDNN's forward chooses for these shapes (a blocked
    // one on the CPUs we know, but whatever this CPU's kernel writes).
    const auto bias_md = b.desc();
    const auto chosen = onednn_compat::conv_fwd_pd(ctx.engine(), onednn_detail::any_md(c.x), onednn_detail::any_md(c.w()),
                                                   &bias_md, onednn_detail::any_md(y.shape()), {2, 2}, {1, 1});
    CHECK(y.desc() == chosen.dst_desc());

    const dnnl::memory::desc xb(onednn_detail::to_dims(c.x), dnnl::memory::data_type::f32, tag::nChw16c);
    auto xblk = x.to_layout(ctx, xb);
    auto wblk = w.to_layout(ctx, op2.preferred_weights_desc(ctx, xblk, c.w(), true));
    op2.forward(ctx, xblk, wblk, &b, y2);
    CHECK(y2.to_host(ctx) == y.to_host(ctx));

    auto dy = testing::make(ctx, y.shape(), random_values(y.numel(), 4));
    op.backward_weights(ctx, x, dy, dw, nullptr);
    op2.backward_weights(ctx, xblk, dy, dw2, nullptr);
    CHECK(dw.is_plain());
    CHECK(dw2.desc() == wblk.desc());
    // Both ops hand oneDNN the same `any` descriptors, so they run one implementation and
    // agree bit for bit; the inputs' layouts change only the reorders in front of it.
    CHECK(op2.weights_gradient_impl() == op.weights_gradient_impl());
    CHECK(dw2.to_host(ctx) == dw.to_host(ctx));
    op.backward_data(ctx, dy, w, dx);
    op2.backward_data(ctx, dy, wblk, dx2);
    CHECK(dx2.to_host(ctx) == dx.to_host(ctx));

    // Primitives are cached per input descriptor: running again reuses them and reuses y.
    const void* y_storage = y.memory().get_data_handle();
    op.forward(ctx, x, w, &b, y);
    CHECK(y.memory().get_data_handle() == y_storage);
}
#endif

#if MICLE_HAS_ONEDNN
TEST_CASE("conv2d<onednn>: maps no larger than the kernel run as matrix products, equal to the direct convolution") {
    context<onednn> ctx;
    // The last case joins input and output by the centre tap only: the other taps' gradient is zero.
    for (const conv_case& c : {conv_case{{4, 24, 2, 2}, 40, 3, 1, 1, false}, conv_case{{3, 8, 3, 3}, 16, 3, 2, 1, false},
                               conv_case{{2, 8, 1, 1}, 12, 3, 1, 1, false}}) {
        CAPTURE(c.x);
        ops::conv2d<onednn> small(c.params()), direct(c.params());
        direct.allow_small_map_matmul(false);
        auto x = testing::make(ctx, c.x, random_values(c.x.numel(), 21));
        auto w = testing::make(ctx, c.w(), random_values(c.w().numel(), 22));
        tensor<onednn> y, y2, dx, dx2, dw, dw2;
        small.forward(ctx, x, w, nullptr, y);
        direct.forward(ctx, x, w, nullptr, y2);
        CHECK(small.lowered_to_matmul());
        CHECK_FALSE(direct.lowered_to_matmul());
        testing::expect_close(y.to_host(ctx), y2.to_host(ctx), 1e-5, 1e-6, "y");
        auto dy = testing::make(ctx, y.shape(), random_values(y.numel(), 23));
        small.backward_data(ctx, dy, w, dx);
        direct.backward_data(ctx, dy, w, dx2);
        testing::expect_close(dx.to_host(ctx), dx2.to_host(ctx), 1e-5, 1e-6, "dx");
        small.backward_weights(ctx, x, dy, dw, nullptr);
        direct.backward_weights(ctx, x, dy, dw2, nullptr);
        CHECK(dw.desc() == w.desc());  // the weights' layout, as the direct path
        testing::expect_close(dw.to_host(ctx), dw2.to_host(ctx), 1e-5, 1e-6, "dw");

        // Weights kept in the layout the products read ([C, kh, kw, O], which a layer
        // adopts) are read, and their gradient written, in place: the same numbers.
        ops::conv2d<onednn> kept(c.params());
        auto wk = w.to_layout(ctx, kept.preferred_weights_desc(ctx, x, c.w(), false));
        CHECK_FALSE(wk.is_plain());
        tensor<onednn> yk, dxk, dwk;
        kept.forward(ctx, x, wk, nullptr, yk);
        CHECK(yk.to_host(ctx) == y.to_host(ctx));
        kept.backward_data(ctx, dy, wk, dxk);
        CHECK(dxk.to_host(ctx) == dx.to_host(ctx));
        kept.backward_weights(ctx, x, dy, dwk, nullptr);
        CHECK(dwk.desc() == wk.desc());
        CHECK(dwk.to_host(ctx) == dw.to_host(ctx));

        // backward_data with weights other than forward's uses those
        auto w2 = testing::make(ctx, c.w(), random_values(c.w().numel(), 24));
        small.backward_data(ctx, dy, w2, dx);
        direct.backward_data(ctx, dy, w2, dx2);
        testing::expect_close(dx.to_host(ctx), dx2.to_host(ctx), 1e-5, 1e-6, "dx, other weights");
        // the next forward sees weights updated in place
        auto wv = w.to_host(ctx);
        for (float& v : wv) v *= -0.5f;
        w.assign(ctx, wv);
        small.forward(ctx, x, w, nullptr, y);
        direct.forward(ctx, x, w, nullptr, y2);
        testing::expect_close(y.to_host(ctx), y2.to_host(ctx), 1e-5, 1e-6, "y after an update in place");
    }
}

namespace {

// A form conv2d<onednn> chooses for some shapes (lowered matrix products, Winograd), checked
// on case `c` against the reference and against oneDNN's direct kernels (`direct`, with the
// form turned off): the forward, both gradients (the weight gradient in the weights'
// layout), weights kept in the layout the form reads (which a layer adopts: the same
// numbers up to `kept_tol` of the scale, the gradient written in that layout), and the next
// step with weights updated in place. `runs_form(op)` tells whether op took the form,
// `form_impl` names its weight gradient (weights_gradient_impl); `expected` says whether it
// should. Tolerances: rtol, and atol relative to the result's scale (expect_close).
template <class RunsForm>
void check_conv_form(const conv_case& c, ops::conv2d<onednn>& direct, bool expected, RunsForm runs_form,
                     std::string_view form_impl, double rtol, double atol_rel, double kept_tol) {
    context<onednn> ctx;
    context<reference> rctx;
    CAPTURE(c.x);
    CAPTURE(c.out_channels);
    CAPTURE(c.kernel);
    CAPTURE(c.stride);
    CAPTURE(c.pad);
    CAPTURE(c.bias);
    const auto xv = random_values(c.x.numel(), 31), wv = random_values(c.w().numel(), 32);
    const auto bv = random_values(c.out_channels, 33);
    ops::conv2d<onednn> op(c.params());
    ops::conv2d<reference> ref(c.params());
    auto x = testing::make(ctx, c.x, xv);
    auto w = testing::make(ctx, c.w(), wv);
    auto b = testing::make(ctx, shape{c.out_channels}, bv);
    auto xr = testing::make(rctx, c.x, xv);
    auto wr = testing::make(rctx, c.w(), wv);
    auto br = testing::make(rctx, shape{c.out_channels}, bv);
    tensor<onednn> y, y2, dx, dx2, dw, dw2, db, db2;
    tensor<reference> yr, dxr, dwr, dbr;
    op.forward(ctx, x, w, c.bias ? &b : nullptr, y);
    direct.forward(ctx, x, w, c.bias ? &b : nullptr, y2);
    ref.forward(rctx, xr, wr, c.bias ? &br : nullptr, yr);
    CHECK(runs_form(op) == expected);
    CHECK_FALSE(runs_form(direct));
    testing::expect_close(y.to_host(ctx), yr.to_host(rctx), rtol, atol_rel, "y");
    testing::expect_close(y.to_host(ctx), y2.to_host(ctx), rtol, atol_rel, "y against oneDNN's direct kernel");
    const auto dyv = random_values(y.numel(), 34);
    auto dy = testing::make(ctx, y.shape(), dyv);
    auto dyr = testing::make(rctx, y.shape(), dyv);
    op.backward_data(ctx, dy, w, dx);
    direct.backward_data(ctx, dy, w, dx2);
    ref.backward_data(rctx, dyr, wr, dxr);
    testing::expect_close(dx.to_host(ctx), dxr.to_host(rctx), rtol, atol_rel, "dx");
    testing::expect_close(dx.to_host(ctx), dx2.to_host(ctx), rtol, atol_rel, "dx against oneDNN's direct kernel");
    op.backward_weights(ctx, x, dy, dw, c.bias ? &db : nullptr);
    direct.backward_weights(ctx, x, dy, dw2, c.bias ? &db2 : nullptr);
    ref.backward_weights(rctx, xr, dyr, dwr, c.bias ? &dbr : nullptr);
    CHECK(dw.desc() == w.desc());  // in the weights' layout, for the optimizer
    CHECK((op.weights_gradient_impl().find(form_impl) != std::string::npos) == expected);
    testing::expect_close(dw.to_host(ctx), dwr.to_host(rctx), rtol, atol_rel, "dw");
    testing::expect_close(dw.to_host(ctx), dw2.to_host(ctx), rtol, atol_rel, "dw against oneDNN's direct kernel");
    if (c.bias) testing::expect_close(db.to_host(ctx), dbr.to_host(rctx), rtol, atol_rel, "db");

    ops::conv2d<onednn> kept(c.params());
    auto wk = w.to_layout(ctx, kept.preferred_weights_desc(ctx, x, c.w(), c.bias));
    tensor<onednn> yk, dxk, dwk, dbk;
    kept.forward(ctx, x, wk, c.bias ? &b : nullptr, yk);
    testing::expect_close(yk.to_host(ctx), y.to_host(ctx), kept_tol, kept_tol / 10, "y, kept layout");
    kept.backward_data(ctx, dy, wk, dxk);
    testing::expect_close(dxk.to_host(ctx), dx.to_host(ctx), kept_tol, kept_tol / 10, "dx, kept layout");
    kept.backward_weights(ctx, x, dy, dwk, c.bias ? &dbk : nullptr);
    CHECK(dwk.desc() == wk.desc());
    testing::expect_close(dwk.to_host(ctx), dw.to_host(ctx), kept_tol, kept_tol / 10, "dw, kept layout");

    auto wv2 = w.to_host(ctx);
    for (float& v : wv2) v *= -0.5f;
    w.assign(ctx, wv2);
    wr = testing::make(rctx, c.w(), wv2);
    op.forward(ctx, x, w, c.bias ? &b : nullptr, y);
    ref.forward(rctx, xr, wr, c.bias ? &br : nullptr, yr);
    testing::expect_close(y.to_host(ctx), yr.to_host(rctx), rtol, atol_rel, "y after an update in place");
    op.backward_data(ctx, dy, w, dx);
    ref.backward_data(rctx, dyr, wr, dxr);
    testing::expect_close(dx.to_host(ctx), dxr.to_host(rctx), rtol, atol_rel, "dx after an update in place");
}

}  // namespace

TEST_CASE("conv2d<onednn>: fp32 convolutions onto maps of at most 4 positions run as matrix products on AVX-512 (kernels "
          "larger than 1x1 on AVX2), equal to the reference") {
    // The path is a choice by measured speed, and the one docs/concepts.md promises for the
    // instruction set oneDNN runs: on AVX-512 every such convolution without a bias, on
    // AVX2 those with a kernel larger than 1x1, below AVX2 none. Whichever it is, the
    // results must equal the reference and oneDNN's direct kernels.
    const auto isa = dnnl::get_effective_cpu_isa();
    const bool avx512 = onednn_detail::cpu_has_avx512(isa), avx2 = onednn_detail::cpu_has_avx2(isa);
    MESSAGE("oneDNN runs " << std::string(onednn_detail::isa_name(isa)) << " kernels here");
    struct lowered_case {
        conv_case c;
        bool lowered;
    };
    // ResNet's layer4 at 64 px (3x3 stride 2 from 4x4, the 1x1 stride-2 shortcut, the 1x1
    // convolutions on 2x2 maps), odd maps and channel counts; with a bias, and onto a 3x3
    // map (9 positions), oneDNN's kernels stay.
    const lowered_case cases[] = {
        {{{2, 40, 4, 4}, 24, 3, 2, 1, false}, true}, {{{2, 48, 4, 4}, 40, 1, 2, 0, false}, true},
        {{{3, 36, 2, 2}, 20, 1, 1, 0, false}, true}, {{{2, 20, 3, 4}, 17, 3, 2, 1, false}, true},
        {{{2, 24, 1, 3}, 8, 1, 1, 0, false}, true},  {{{2, 24, 4, 4}, 16, 3, 2, 1, true}, false},
        {{{2, 16, 5, 5}, 8, 3, 2, 1, false}, false},
    };
    for (const auto& one : cases) {
        ops::conv2d<onednn> direct(one.c.params());
        direct.allow_lowered(false);
        check_conv_form(
            one.c, direct, one.lowered && (avx512 || (avx2 && one.c.kernel > 1)),
            [](const ops::conv2d<onednn>& op) { return op.runs_lowered(); },
            "lowered matmul", 1e-5, 1e-6, 1e-6);
    }
}

// Winograd F(4x4, 3x3) rounds otherwise than a direct sum: its input and output transforms
// scale values by up to 8 (the interpolation points +-2, +-1/2), so its errors follow the
// result's scale rather than each value's. Against the direct kernels on ResNet's shapes
// (64-512 channels, batch 128) the forward and the data gradient differed by 1e-6 to 4e-6
// of the scale, the weight gradient (a sum over every position) by up to 1.3e-5 at 64x64
// maps (a throwaway oneDNN program). The maps here are at most 16x16; 2e-5 of the scale is
// allowed, with rtol 1e-5.
/// Whether oneDNN has fp32 Winograd kernels for all three passes of case `c` on this CPU
/// (2.6 has them on AVX-512 CPUs; asked, not assumed).
bool onednn_has_winograd(const conv_case& c) {
    context<onednn> ctx;
    using dnnl::memory;
    const auto any = [](const shape& s) { return memory::desc(onednn_detail::to_dims(s), memory::data_type::f32, memory::format_tag::any); };
    const shape y = ops::checks::conv2d(c.params(), c.x, c.w(), nullptr);
    const memory::desc x = any(c.x), w = any(c.w()), d = any(y), b = any(shape{c.out_channels});
    const memory::dims st{c.stride, c.stride}, pad{c.pad, c.pad};
    try {
        const auto alg = dnnl::algorithm::convolution_winograd;
        const dnnl::convolution_forward::primitive_desc f(
            c.bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, x, w, b, d, st, pad, pad)
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, x, w, d, st, pad, pad),
            ctx.engine());
        const dnnl::convolution_backward_data::primitive_desc bd(dnnl::convolution_backward_data::desc(alg, x, w, d, st, pad, pad),
                                                                 ctx.engine(), f);
        const dnnl::convolution_backward_weights::primitive_desc bw(
            c.bias ? dnnl::convolution_backward_weights::desc(alg, x, w, b, d, st, pad, pad)
                   : dnnl::convolution_backward_weights::desc(alg, x, w, d, st, pad, pad),
            ctx.engine(), f);
        return true;
    } catch (const dnnl::error&) {
        return false;
    }
}

TEST_CASE("conv2d<onednn>: fp32 3x3 stride-1 convolutions over 32+ channels onto maps of 4x4 and more run oneDNN's Winograd kernels where oneDNN has them, equal to the reference") {
    MESSAGE("oneDNN runs " << std::string(onednn_detail::isa_name(dnnl::get_effective_cpu_isa())) << " kernels here");
    struct wino_case {
        conv_case c;
        bool winograd;
    };
    const wino_case cases[] = {
        {{{2, 32, 8, 8}, 32, 3, 1, 1, false}, true},      // whole 4x4 tiles
        {{{2, 40, 13, 10}, 36, 3, 1, 1, false}, true},    // partial tiles; channels not multiples of 16
        {{{1, 64, 16, 16}, 64, 3, 1, 1, false}, true},    // ResNet-18's layer1 at 64 px
        {{{2, 32, 6, 6}, 32, 3, 1, 0, false}, true},      // no padding: onto 4x4
        {{{2, 32, 6, 5}, 32, 3, 1, 0, false}, false},     // onto 4x3
        {{{2, 32, 2, 2}, 32, 3, 1, 1, false}, false},     // onto 2x2: the small-map matrix product
        {{{2, 16, 8, 8}, 32, 3, 1, 1, false}, false},     // 16 input channels
        {{{2, 32, 8, 8}, 16, 3, 1, 1, false}, false},     // 16 output channels
        {{{2, 32, 8, 8}, 32, 3, 1, 1, true}, false},      // a bias
        {{{2, 32, 16, 16}, 32, 3, 2, 1, false}, false},   // stride 2
        {{{2, 32, 9, 9}, 32, 1, 1, 0, false}, false},     // 1x1
    };
    const auto runs_winograd = [](const ops::conv2d<onednn>& op) { return op.runs_winograd(); };
    for (const auto& one : cases) {
        ops::conv2d<onednn> direct(one.c.params());
        direct.allow_winograd(false);
        check_conv_form(one.c, direct, one.winograd && onednn_has_winograd(one.c), runs_winograd, "wino", 1e-5, 2e-5, 1e-6);
    }

    SUBCASE("allow_winograd(true, true) takes any map oneDNN has the kernels for, a bias included") {
        for (const conv_case& c : {conv_case{{2, 32, 2, 2}, 32, 3, 1, 1, false}, conv_case{{2, 3, 5, 5}, 8, 3, 1, 1, true}}) {
            ops::conv2d<onednn> direct(c.params());
            direct.allow_winograd(false);
            ops::conv2d<onednn> any(c.params());
            any.allow_winograd(true, true);
            context<onednn> ctx;
            auto x = testing::make(ctx, c.x, random_values(c.x.numel(), 41));
            auto w = testing::make(ctx, c.w(), random_values(c.w().numel(), 42));
            auto b = testing::make(ctx, shape{c.out_channels}, random_values(c.out_channels, 43));
            tensor<onednn> y, y2;
            any.forward(ctx, x, w, c.bias ? &b : nullptr, y);
            direct.forward(ctx, x, w, c.bias ? &b : nullptr, y2);
            CHECK(any.runs_winograd() == onednn_has_winograd(c));
            testing::expect_close(y.to_host(ctx), y2.to_host(ctx), 1e-5, 2e-5, "y");
        }
    }
    SUBCASE("onednn_options::winograd = false keeps the direct kernels") {
        onednn_options o;
        o.winograd = false;
        context<onednn> ctx(o);
        const conv_case c = cases[0].c;
        ops::conv2d<onednn> op(c.params());
        auto x = testing::make(ctx, c.x, random_values(c.x.numel(), 44));
        auto w = testing::make(ctx, c.w(), random_values(c.w().numel(), 45));
        tensor<onednn> y, dw;
        op.forward(ctx, x, w, nullptr, y);
        CHECK_FALSE(op.runs_winograd());
        op.backward_weights(ctx, x, y, dw, nullptr);
        CHECK(op.weights_gradient_impl().find("wino") == std::string::npos);
    }
}

TEST_CASE("conv2d<onednn>: where oneDNN's weight gradient of a padded convolution is a GEMM per image and the explicitly "
          "padded one has a JIT kernel, that kernel runs, equal to the reference") {
    MESSAGE("oneDNN runs " << std::string(onednn_detail::isa_name(dnnl::get_effective_cpu_isa())) << " kernels here");
    context<onednn> ctx;
    context<reference> rctx;
    // 3x3 convolutions on 2x2 maps (ResNet's layer4 at 64 px), where oneDNN 2.6 falls back
    // to a GEMM on AVX2, and a 3x3 one on 8x8 maps, where it has JIT kernels itself.
    for (const conv_case& c : {conv_case{{4, 32, 2, 2}, 32, 3, 1, 1, false}, conv_case{{2, 8, 2, 2}, 12, 3, 1, 1, true},
                               conv_case{{2, 16, 8, 8}, 16, 3, 1, 1, false}}) {
        CAPTURE(c.x);
        // oneDNN's own choice for the padded convolution, and for the unpadded one over the
        // input with a zero border.
        const shape y_shape = ops::checks::conv2d(c.params(), c.x, c.w(), nullptr);
        const auto db_md = onednn_detail::plain_md(shape{c.out_channels});
        const auto* db_ptr = c.bias ? &db_md : nullptr;
        const auto own = [&](const shape& xs, std::int64_t pad) {
            const auto xa = onednn_detail::any_md(xs), wa = onednn_detail::any_md(c.w()), ya = onednn_detail::any_md(y_shape);
            const auto hint = onednn_compat::conv_fwd_pd(ctx.engine(), xa, wa, db_ptr, ya, {1, 1}, {pad, pad});
            return std::string(onednn_compat::conv_bwd_weights_pd(ctx.engine(), xa, wa, db_ptr, ya, {1, 1}, {pad, pad}, hint)
                                   .impl_info_str());
        };
        const std::string padded = own(c.x, c.pad), bordered = own(shape{c.x[0], c.x[1], c.x[2] + 2 * c.pad, c.x[3] + 2 * c.pad}, 0);
        const bool swap = padded.find("gemm") != std::string::npos && bordered.find("gemm") == std::string::npos &&
                          !bordered.starts_with("ref");
        MESSAGE("oneDNN's weight gradient: " << padded << " padded, " << bordered << " with a zero border");
        ops::conv2d<onednn> op(c.params());
        op.allow_small_map_matmul(false);  // the direct convolution's own weight gradient
        op.allow_lowered(false);
        const auto xv = random_values(c.x.numel(), 5), wv = random_values(c.w().numel(), 6), bv = random_values(c.out_channels, 7);
        auto x = testing::make(ctx, c.x, xv);
        auto w = testing::make(ctx, c.w(), wv);
        auto b = testing::make(ctx, shape{c.out_channels}, bv);
        tensor<onednn> y, dw, db;
        op.forward(ctx, x, w, c.bias ? &b : nullptr, y);
        op.backward_weights(ctx, x, y, dw, c.bias ? &db : nullptr);
        CHECK(op.weights_gradient_impl() == (swap ? bordered : padded));
        // the same gradient as the reference's
        ops::conv2d<reference> ref(c.params());
        auto xr = testing::make(rctx, c.x, xv), wr = testing::make(rctx, c.w(), wv), br = testing::make(rctx, shape{c.out_channels}, bv);
        tensor<reference> yr, dwr, dbr;
        ref.forward(rctx, xr, wr, c.bias ? &br : nullptr, yr);
        ref.backward_weights(rctx, xr, yr, dwr, c.bias ? &dbr : nullptr);
        testing::expect_close(dw.to_host(ctx), dwr.to_host(rctx), 1e-5, 1e-6, "dw");
        if (c.bias) testing::expect_close(db.to_host(ctx), dbr.to_host(rctx), 1e-5, 1e-6, "db");
        // a second input of another layout into the same zero-bordered buffer
        auto x2 = x.to_layout(ctx, dnnl::memory::desc(onednn_detail::to_dims(c.x), dnnl::memory::data_type::f32,
                                                      dnnl::memory::format_tag::nhwc));
        tensor<onednn> dw2;
        op.backward_weights(ctx, x2, y, dw2, nullptr);
        CHECK(dw2.to_host(ctx) == dw.to_host(ctx));
    }
}
#endif

TEST_CASE_TEMPLATE("conv2d: bad input gives an error naming the op and the shapes", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    ops::conv2d<B> op({3, 3, 1, 1, 1, 1});
    auto x = tensor<B>::zeros(ctx, shape{2, 4, 5, 5});
    auto w = tensor<B>::zeros(ctx, shape{8, 3, 3, 3});
    auto w4 = tensor<B>::zeros(ctx, shape{8, 4, 3, 3});
    auto wbf = tensor<B>::zeros(ctx, shape{8, 4, 3, 3}, dtype::bf16);
    auto b = tensor<B>::zeros(ctx, shape{7});
    auto x3 = tensor<B>::zeros(ctx, shape{2, 4, 5});
    tensor<B> y, dx;
    CHECK_THROWS_WITH_AS(op.forward(ctx, x, w, nullptr, y),
                         "conv2d: input [2, 4, 5, 5] has 4 channels but weight [8, 3, 3, 3] expects 3", shape_error);
    CHECK_THROWS_WITH_AS(op.forward(ctx, x, w4, &b, y), "conv2d: bias [7] must be [8]", shape_error);
    CHECK_THROWS_WITH_AS(op.forward(ctx, x3, w4, nullptr, y),
                         "conv2d: input must have rank 4, got shape [2, 4, 5]", shape_error);
    CHECK_THROWS_WITH_AS(op.forward(ctx, x, wbf, nullptr, y),
                         "conv2d: weight has dtype bf16, but this op computes in f32 only", shape_error);
    ops::conv2d<B> fresh({3, 3, 1, 1, 1, 1});
    CHECK_THROWS_WITH_AS(fresh.backward_data(ctx, x, w4, dx), doctest::Contains("before forward"), shape_error);
    ops::conv2d<B> big({9, 9, 1, 1, 0, 0});
    auto w9 = tensor<B>::zeros(ctx, shape{8, 4, 9, 9});
    CHECK_THROWS_WITH_AS(big.forward(ctx, x, w9, nullptr, y), doctest::Contains("is too small for kernel 9x9"), shape_error);
}
