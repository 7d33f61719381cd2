// bf16 mixed precision on the CPU backend (onednn_options::bf16): every op the backbone
// runs, forward and backward, against the reference backend fed the same bf16-rounded
// values; a ResNet and a SimCLR learner step against fp32; checkpoints of a bf16 run in
// fp32 and on the reference backend. The cases skip with a message where oneDNN has no
// bf16 kernels (a CPU without AVX512-BF16 or AMX).
//
// Tolerances. A bf16 value keeps 8 significant bits: rounding an fp32 result to bf16
// (round to nearest even) errs by at most 2^-9 of its magnitude. Every op here computes
// from bf16 inputs with fp32 accumulation and rounds its bf16 output once, so against the
// reference on the same rounded inputs its error is that one rounding (rtol 2^-8, twice
// the bound, for the order of fp32 accumulation) plus fp32 accumulation error (atol, a
// small fraction of the result's scale). fp32 outputs (weight, scale and shift gradients)
// carry accumulation error only. Max pooling and ReLU select or pass values and are exact.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "testing.hpp"
#include "train/learners.hpp"

#if MICLE_HAS_ONEDNN && !defined(MICLE_TEST_GPU_PASS)
namespace micle {
namespace {

using ref = reference;
using testing::random_values;
using dnn = onednn;
constexpr double bf16_rtol = 1.0 / 256;  // twice the 2^-9 bound of one rounding

bool bf16_ready() {
    if (onednn_detail::cpu_has_bf16()) return true;
    const char* isa = onednn_detail::isa_name(dnnl::get_effective_cpu_isa());
    std::printf("skipped on the onednn backend: bf16 needs AVX512-BF16 or AMX, oneDNN runs %s kernels here\n", isa);
    MESSAGE("skipped on the onednn backend: bf16 needs AVX512-BF16 or AMX; oneDNN runs " << std::string(isa) << " kernels here");
    return false;
}
#define MICLE_SKIP_WITHOUT_BF16() \
    do {                          \
        if (!bf16_ready()) return; \
    } while (0)

context<dnn> mixed_context() {
    onednn_options o;
    o.bf16 = true;
    return context<dnn>(o);
}

using testing::bf16_rounded;

/// Reference-backend tensors of the values rounded to bf16, and oneDNN bf16 tensors of
/// the same values.
struct pair_of {
    tensor<ref> r;
    tensor<dnn> d;
};
pair_of both(context<ref>& rc, context<dnn>& dc, const shape& s, const std::vector<float>& v) {
    return {tensor<ref>::from_host(rc, s, bf16_rounded(v)), tensor<dnn>::from_host(dc, s, v, dtype::bf16)};
}

struct conv_case {
    const char* name;
    std::int64_t n, c, h, w, o, k, stride, pad;
    bool f32_input = false;  // the first convolution reads the fp32 images
    bool lowered = false;          // gradients as matrix products over NHWC activations (lowered_conv)
    bool lowered_forward = false;  // and the forward
};

}  // namespace

TEST_CASE("onednn bf16: a context refuses bf16 without AVX512-BF16, and names the precision") {
    if (!onednn_detail::cpu_has_bf16()) {
        onednn_options o;
        o.bf16 = true;
        CHECK_THROWS_WITH_AS(context<dnn>{o}, doctest::Contains("bf16 mixed precision needs a CPU with AVX512-BF16 or AMX"),
                             value_error);
    } else {
        CHECK(mixed_context().description().find("bf16 mixed precision") != std::string::npos);
    }
    CHECK(onednn_detail::cpu_has_bf16(dnnl::cpu_isa::avx512_core_amx));
    CHECK(onednn_detail::cpu_has_bf16(dnnl::cpu_isa::avx512_core_bf16));
    CHECK_FALSE(onednn_detail::cpu_has_bf16(dnnl::cpu_isa::avx512_core_vnni));
    CHECK_FALSE(onednn_detail::cpu_has_bf16(dnnl::cpu_isa::avx2));
    // The fp32 rules' ISA checks nest the same way (lowered_conv::pays_fp32).
    CHECK(onednn_detail::cpu_has_avx2(dnnl::cpu_isa::avx2));
    CHECK(onednn_detail::cpu_has_avx2(dnnl::cpu_isa::avx512_core));
    CHECK_FALSE(onednn_detail::cpu_has_avx2(dnnl::cpu_isa::avx));
    CHECK_FALSE(onednn_detail::cpu_has_avx2(dnnl::cpu_isa::sse41));
    CHECK_FALSE(onednn_detail::cpu_has_avx512(dnnl::cpu_isa::avx2));
    CHECK(context<dnn>().description().find("fp32") != std::string::npos);
}

TEST_CASE("onednn bf16: convolution forward, data and weight gradients against the reference on bf16 inputs") {
    MICLE_SKIP_WITHOUT_BF16();
    context<ref> rc;
    auto dc = mixed_context();
    const conv_case cases[] = {
        {"3x3 pad 1", 2, 16, 8, 8, 32, 3, 1, 1},
        {"3x3 stride 2", 2, 16, 9, 9, 32, 3, 2, 1},
        {"1x1 stride 2 (downsample)", 2, 32, 8, 8, 16, 1, 2, 0, false, true},
        {"1x1 on a 3x5 map", 3, 32, 3, 5, 48, 1, 1, 0, false, true},
        {"1x1 on a 16x16 map", 2, 16, 16, 16, 32, 1, 1, 0, false, true},
        {"3x3 pad 1 on a 4x4 map", 4, 16, 4, 4, 32, 3, 1, 1, false, true},
        {"3x3 stride 2 onto a 4x4 map", 2, 16, 8, 8, 24, 3, 2, 1, false, true},
        {"1x1 on a 2x2 map", 2, 32, 2, 2, 48, 1, 1, 0, false, true, true},
        {"1x1 stride 2 from 256 channels", 2, 256, 4, 4, 32, 1, 2, 0, false, true, true},
        // Odd maps: a stride-2 view needs a frame wider than the map (7x7 -> 4x4).
        {"1x1 stride 2 on a 7x7 map", 2, 24, 7, 7, 32, 1, 2, 0, false, true},
        {"1x1 stride 2 on a 3x5 map from 256 channels", 2, 256, 3, 5, 16, 1, 2, 0, false, true, true},
        {"3x3 stride 2 without padding on a 7x9 map", 2, 16, 7, 9, 24, 3, 2, 0, false, true},
        {"3x3 stride 2 on a 7x7 map", 2, 16, 7, 7, 24, 3, 2, 1, false, true},
        {"3x3 stride 2 from 256 channels onto a 2x2 map", 2, 256, 4, 4, 16, 3, 2, 1, false, true, true},
        {"3x3 on a 2x2 map", 4, 32, 2, 2, 32, 3, 1, 1},
        {"7x7 stem on fp32 images", 2, 3, 20, 20, 16, 7, 2, 3, true},
        {"7x7 stem on fp32 images onto a 4x4 map", 2, 3, 8, 8, 16, 7, 2, 3, true, true},
        {"3x3 small stem on fp32 images", 2, 3, 16, 16, 8, 3, 1, 1, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const ops::conv2d_params p{c.k, c.k, c.stride, c.stride, c.pad, c.pad};
        const shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c, c.k, c.k};
        const auto xv = random_values(xs.numel(), 1), wv = random_values(ws.numel(), 2, -0.2f, 0.2f);
        // The fp32 input is converted to bf16 by the convolution itself.
        auto xr = tensor<ref>::from_host(rc, xs, bf16_rounded(xv));
        auto xd = tensor<dnn>::from_host(dc, xs, xv, c.f32_input ? dtype::f32 : dtype::bf16);
        auto wr = tensor<ref>::from_host(rc, ws, bf16_rounded(wv));
        auto wd = tensor<dnn>::from_host(dc, ws, wv);  // fp32 master weights
        ops::conv2d<ref> rop(p);
        ops::conv2d<dnn> dop(p);
        tensor<ref> yr, dxr, dwr;
        tensor<dnn> yd, dxd, dwd;
        rop.forward(rc, xr, wr, nullptr, yr);
        dop.forward(dc, xd, wd, nullptr, yd);
        CHECK(yd.dtype() == dtype::bf16);
        CHECK(dop.lowered_to_matmul() == (c.h * c.w <= c.k * c.k));  // small maps: bf16 matrix products
        CHECK(dop.runs_lowered() == (c.lowered && onednn_detail::cpu_has_amx()));  // measured with AMX only
        CHECK(dop.runs_lowered_forward() == (c.lowered_forward && onednn_detail::cpu_has_amx()));
        testing::expect_close(yd.to_host(dc), yr.to_host(rc), bf16_rtol, 1e-3, "forward");

        const auto dyv = random_values(yr.numel(), 3);
        auto dy = both(rc, dc, yr.shape(), dyv);
        rop.backward_data(rc, dy.r, wr, dxr);
        dop.backward_data(dc, dy.d, wd, dxd);
        CHECK(dxd.dtype() == dtype::bf16);
        testing::expect_close(dxd.to_host(dc), dxr.to_host(rc), bf16_rtol, 1e-3, "data gradient");

        rop.backward_weights(rc, xr, dy.r, dwr, nullptr);
        dop.backward_weights(dc, xd, dy.d, dwd, nullptr);
        CHECK(dwd.dtype() == dtype::f32);  // fp32 for the fp32 master weights
        CHECK(dwd.desc() == wd.desc());    // in the weights' layout, for the optimizer
        testing::expect_close(dwd.to_host(dc), dwr.to_host(rc), 1e-4, 1e-4, "weight gradient");
        if (c.lowered) {
            // The lowered form, where it runs by itself (AMX) or forced (AVX512-BF16 without
            // AMX, where it is not taken for speed but must give the same numbers), against
            // oneDNN's own convolution kernels on the same bf16 values (the same sums in
            // another order), all three passes, and on the next step.
            ops::conv2d<dnn> forced(p);
            forced.allow_lowered(true, true);
            ops::conv2d<ref> rop2(p);
            auto& low = dop.runs_lowered() ? dop : forced;
            tensor<dnn> yl, dxl, dwl;
            low.forward(dc, xd, wd, nullptr, yl);
            REQUIRE(low.runs_lowered());
            CHECK(low.runs_lowered_forward() == c.lowered_forward);
            low.backward_data(dc, dy.d, wd, dxl);
            low.backward_weights(dc, xd, dy.d, dwl, nullptr);
            CHECK(low.weights_gradient_impl() == "lowered matmul");
            CHECK(dwl.desc() == wd.desc());
            testing::expect_close(yl.to_host(dc), yr.to_host(rc), bf16_rtol, 1e-3, "forward, lowered");
            testing::expect_close(dxl.to_host(dc), dxr.to_host(rc), bf16_rtol, 1e-3, "data gradient, lowered");
            testing::expect_close(dwl.to_host(dc), dwr.to_host(rc), 1e-4, 1e-4, "weight gradient, lowered");
            ops::conv2d<dnn> direct(p);
            direct.allow_lowered(false);
            tensor<dnn> y2, dx2, dw2;
            direct.forward(dc, xd, wd, nullptr, y2);
            CHECK_FALSE(direct.runs_lowered());
            testing::expect_close(yl.to_host(dc), y2.to_host(dc), bf16_rtol, 1e-3, "forward, direct");
            direct.backward_data(dc, dy.d, wd, dx2);
            direct.backward_weights(dc, xd, dy.d, dw2, nullptr);
            CHECK(direct.weights_gradient_impl() != "lowered matmul");
            testing::expect_close(dxl.to_host(dc), dx2.to_host(dc), bf16_rtol, 1e-3, "data gradient, direct");
            testing::expect_close(dwl.to_host(dc), dw2.to_host(dc), 1e-4, 1e-4, "weight gradient, direct");

            // The next step: the optimizer updates the weights in place, then forward and
            // the data gradient run again; the data gradient must use the new weights.
            const auto wv2 = random_values(ws.numel(), 9, -0.2f, 0.2f);
            wd.assign(dc, wv2);
            wr = tensor<ref>::from_host(rc, ws, bf16_rounded(wv2));
            rop2.forward(rc, xr, wr, nullptr, yr);
            low.forward(dc, xd, wd, nullptr, yl);
            testing::expect_close(yl.to_host(dc), yr.to_host(rc), bf16_rtol, 1e-3, "forward, next step");
            rop2.backward_data(rc, dy.r, wr, dxr);
            low.backward_data(dc, dy.d, wd, dxl);
            testing::expect_close(dxl.to_host(dc), dxr.to_host(rc), bf16_rtol, 1e-3, "data gradient, next step");
        }
    }
}

TEST_CASE("onednn bf16: the space-to-depth weight gradient of stride-2 convolutions over few channels") {
    // The stem's weight gradient as a stride-1 convolution over the input rearranged
    // space-to-depth (onednn_detail::space_to_depth_grad), forced on where AMX is missing:
    // against the reference on the same bf16 values and against oneDNN's own kernel for the
    // strided form (the same products summed in another order). Odd and even kernels and
    // maps, both padding parities, a non-square kernel, rows that feed no output (dropped),
    // 1 to 4 channels; fp32 and bf16 inputs; plain and blocked weights; and two steps with
    // other inputs, so the rearranged buffer is refilled and its zero cells stay zero.
    MICLE_SKIP_WITHOUT_BF16();
    context<ref> rc;
    auto dc = mixed_context();
    struct s2d_case {
        const char* name;
        std::int64_t n, c, h, w, o, kh, kw, ph, pw;
        bool f32_input, blocked_weights;
    };
    const s2d_case cases[] = {
        {"7x7 stem, 3 channels, fp32 images", 2, 3, 20, 20, 16, 7, 7, 3, 3, true, true},
        {"7x7 stem, grayscale 17x19", 2, 1, 17, 19, 8, 7, 7, 3, 3, false, false},
        {"5x5 pad 2, 4 channels", 3, 4, 12, 12, 16, 5, 5, 2, 2, false, true},
        {"5x5 pad 1 (odd padding), 3 channels 11x10", 2, 3, 11, 10, 8, 5, 5, 1, 1, true, false},
        {"6x6 without padding on 15x15 (a row and a column feed no output)", 2, 2, 15, 15, 8, 6, 6, 0, 0, false, false},
        {"5x7 kernel, pads 2 and 3, 13x16", 2, 2, 13, 16, 8, 5, 7, 2, 3, false, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const ops::conv2d_params p{c.kh, c.kw, 2, 2, c.ph, c.pw};
        const shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c, c.kh, c.kw};
        const auto wv = random_values(ws.numel(), 2, -0.2f, 0.2f);
        auto wr = tensor<ref>::from_host(rc, ws, bf16_rounded(wv));
        auto wd = tensor<dnn>::from_host(dc, ws, wv);
        ops::conv2d<ref> rop(p);
        ops::conv2d<dnn> dop(p), direct(p);
        dop.allow_space_to_depth(true, true);
        direct.allow_space_to_depth(false);
        for (int step = 0; step < 2; ++step) {
            CAPTURE(step);
            const auto xv = random_values(xs.numel(), 10 + std::uint64_t(step));
            auto xr = tensor<ref>::from_host(rc, xs, bf16_rounded(xv));
            auto xd = tensor<dnn>::from_host(dc, xs, xv, c.f32_input ? dtype::f32 : dtype::bf16);
            if (step == 0 && c.blocked_weights) {  // the layout oneDNN's kernel prefers, whichever this CPU's is
                const auto preferred = dop.preferred_weights_desc(dc, xd, ws, false);
                dop.adopt_preferred_layout(dc, xd, wd, false);
                CHECK(wd.desc() == preferred);
            }
            tensor<ref> yr, dwr;
            tensor<dnn> yd, dwd, y2, dw2;
            rop.forward(rc, xr, wr, nullptr, yr);
            dop.forward(dc, xd, wd, nullptr, yd);
            direct.forward(dc, xd, wd, nullptr, y2);
            REQUIRE(dop.runs_space_to_depth());
            CHECK_FALSE(direct.runs_space_to_depth());
            const auto dyv = random_values(yr.numel(), 20 + std::uint64_t(step));
            auto dy = both(rc, dc, yr.shape(), dyv);
            rop.backward_weights(rc, xr, dy.r, dwr, nullptr);
            dop.backward_weights(dc, xd, dy.d, dwd, nullptr);
            direct.backward_weights(dc, xd, dy.d, dw2, nullptr);
            CHECK(dop.weights_gradient_impl().starts_with("space-to-depth "));
            CHECK(dwd.dtype() == dtype::f32);
            CHECK(dwd.desc() == wd.desc());  // in the weights' layout, for the optimizer
            const auto got = dwd.to_host(dc);
            // fp32 sums of exact bf16 products, in two orders: accumulation error only.
            testing::expect_close(got, dwr.to_host(rc), 1e-4, 1e-4, "weight gradient");
            testing::expect_close(got, dw2.to_host(dc), 1e-4, 1e-4, "weight gradient, oneDNN's strided kernel");
            if (c.blocked_weights) {  // the blocked padding of the gradient is zero: squares cannot cancel
                double all = 0, plain = 0;
                for (float v : dwd.host_buffer()) all += double(v) * v;
                for (float v : got) plain += double(v) * v;
                CHECK(all == doctest::Approx(plain).epsilon(1e-9));
            }
        }
    }
}

TEST_CASE("onednn bf16: weights kept in the preferred layout stay fp32 and give the same result") {
    MICLE_SKIP_WITHOUT_BF16();
    auto dc = mixed_context();
    // oneDNN's kernels (weights blocked), the lowered form where AMX runs it (1x1; weights
    // [O, kh, kw, C]) and the small-map product (weights [C, kh, kw, O]).
    struct conv {
        ops::conv2d_params p;
        shape xs;
    };
    for (const conv& c : {conv{{3, 3, 1, 1, 1, 1}, {2, 16, 8, 8}}, conv{{1, 1, 1, 1, 0, 0}, {2, 16, 8, 8}},
                          conv{{3, 3, 1, 1, 1, 1}, {2, 16, 2, 2}}}) {
        CAPTURE(c.xs);
        CAPTURE(c.p.kernel_h);
        const auto& p = c.p;
        const auto& xs = c.xs;
        const shape ws{32, xs[1], p.kernel_h, p.kernel_w};
        ops::conv2d<dnn> op(p), kept(p);
        const auto x = tensor<dnn>::from_host(dc, xs, random_values(xs.numel(), 1), dtype::bf16);
        auto w = tensor<dnn>::from_host(dc, ws, random_values(ws.numel(), 2));
        const auto pref = kept.preferred_weights_desc(dc, x, ws, false);
        CHECK(pref.data_type() == dnnl::memory::data_type::f32);
        auto wp = w.to_layout(dc, pref);
        CHECK(wp.to_host(dc) == w.to_host(dc));  // the fp32 values, only laid out differently
        tensor<dnn> y1, y2, dx1, dx2, dw1, dw2;
        op.forward(dc, x, w, nullptr, y1);
        kept.forward(dc, x, wp, nullptr, y2);
        CHECK(y2.to_host(dc) == y1.to_host(dc));
        const auto dy = tensor<dnn>::from_host(dc, y1.shape(), random_values(y1.shape().numel(), 3), dtype::bf16);
        op.backward_data(dc, dy, w, dx1);
        kept.backward_data(dc, dy, wp, dx2);
        CHECK(dx2.to_host(dc) == dx1.to_host(dc));
        op.backward_weights(dc, x, dy, dw1, nullptr);
        kept.backward_weights(dc, x, dy, dw2, nullptr);
        CHECK(dw2.desc() == wp.desc());  // fp32, in the weights' layout
        testing::expect_close(dw2.to_host(dc), dw1.to_host(dc), 1e-6, 1e-7, "weight gradient");
        // an fp32 master update in place, then the next step sees it
        auto v = wp.to_host(dc);
        for (float& e : v) e *= -0.5f;
        wp.assign(dc, v);
        w.assign(dc, v);
        op.forward(dc, x, w, nullptr, y1);
        kept.forward(dc, x, wp, nullptr, y2);
        CHECK(y2.to_host(dc) == y1.to_host(dc));
    }
}

TEST_CASE("onednn bf16: batch norm (with and without the fused ReLU) against the reference on bf16 inputs") {
    MICLE_SKIP_WITHOUT_BF16();
    context<ref> rc;
    auto dc = mixed_context();
    for (const bool fuse : {false, true}) {
        CAPTURE(fuse);
        const shape xs{4, 32, 5, 5}, cs{32};
        // A blocked bf16 input, as a convolution hands it on.
        const auto xv = random_values(xs.numel(), 4, -2.0f, 3.0f);
        auto xr = tensor<ref>::from_host(rc, xs, bf16_rounded(xv));
        const auto xd = tensor<dnn>::from_host(dc, xs, xv, dtype::bf16)
                            .to_layout(dc, dnnl::memory::desc(onednn_detail::to_dims(xs), dnnl::memory::data_type::bf16,
                                                              dnnl::memory::format_tag::aBcd16b));
        const auto gv = random_values(32, 5, 0.5f, 1.5f), bv = random_values(32, 6);
        auto gr = testing::make(rc, cs, gv), br = testing::make(rc, cs, bv);
        auto gd = testing::make(dc, cs, gv), bd = testing::make(dc, cs, bv);
        auto rmr = tensor<ref>::zeros(rc, cs), rvr = testing::make(rc, cs, std::vector<float>(32, 1.0f));
        auto rmd = tensor<dnn>::zeros(dc, cs), rvd = testing::make(dc, cs, std::vector<float>(32, 1.0f));
        ops::batch_norm_params p;
        p.fuse_relu = fuse;
        ops::batch_norm<ref> rop(p);
        ops::batch_norm<dnn> dop(p);
        tensor<ref> yr, dxr, dgr, dbr;
        tensor<dnn> yd, dxd, dgd, dbd;
        rop.forward_training(rc, xr, gr, br, rmr, rvr, yr);
        dop.forward_training(dc, xd, gd, bd, rmd, rvd, yd);
        CHECK(yd.dtype() == dtype::bf16);
        testing::expect_close(yd.to_host(dc), yr.to_host(rc), bf16_rtol, 1e-4, "output");
        // Statistics come from the bf16 values in fp32: the running ones match closely.
        testing::expect_close(rmd.to_host(dc), rmr.to_host(rc), 1e-5, 1e-6, "running mean");
        testing::expect_close(rvd.to_host(dc), rvr.to_host(rc), 1e-5, 1e-6, "running variance");

        const auto dyv = random_values(xs.numel(), 7);
        auto dy = both(rc, dc, xs, dyv);
        rop.backward(rc, xr, dy.r, gr, br, dxr, dgr, dbr);
        dop.backward(dc, xd, dy.d, gd, bd, dxd, dgd, dbd);
        CHECK(dxd.dtype() == dtype::bf16);
        CHECK(dgd.dtype() == dtype::f32);
        // dx subtracts the means of dy and dy x_hat from dy: cancellation, so the
        // absolute part of the tolerance is one bf16 rounding of the result's scale.
        testing::expect_close(dxd.to_host(dc), dxr.to_host(rc), bf16_rtol, 1.0 / 256, "input gradient");
        testing::expect_close(dgd.to_host(dc), dgr.to_host(rc), 1e-4, 1e-4, "scale gradient");
        testing::expect_close(dbd.to_host(dc), dbr.to_host(rc), 1e-4, 1e-4, "shift gradient");
    }
}

TEST_CASE("onednn bf16: ReLU, the residual add, max pooling and global average pooling against the reference") {
    MICLE_SKIP_WITHOUT_BF16();
    context<ref> rc;
    auto dc = mixed_context();
    const shape xs{2, 16, 7, 7};
    auto x = both(rc, dc, xs, random_values(xs.numel(), 8));
    auto b = both(rc, dc, xs, random_values(xs.numel(), 9));

    SUBCASE("relu is exact") {
        tensor<ref> yr, dxr;
        tensor<dnn> yd, dxd;
        ops::relu<ref> rop;
        ops::relu<dnn> dop;
        rop.forward(rc, x.r, yr);
        dop.forward(dc, x.d, yd);
        CHECK(yd.dtype() == dtype::bf16);
        CHECK(yd.to_host(dc) == yr.to_host(rc));
        rop.backward(rc, x.r, b.r, dxr);
        dop.backward(dc, x.d, b.d, dxd);
        CHECK(dxd.to_host(dc) == dxr.to_host(rc));
    }
    SUBCASE("add rounds once") {
        tensor<ref> yr;
        tensor<dnn> yd;
        ops::add<ref>().forward(rc, x.r, b.r, yr);
        ops::add<dnn>().forward(dc, x.d, b.d, yd);
        CHECK(yd.dtype() == dtype::bf16);
        testing::expect_close(yd.to_host(dc), yr.to_host(rc), bf16_rtol, 0.0, "sum");
        CHECK(yd.to_host(dc) == bf16_rounded(yr.to_host(rc)));  // fp32 sum of two bf16, rounded to nearest even
        auto xf = tensor<dnn>::from_host(dc, xs, random_values(xs.numel(), 8));
        CHECK_THROWS_WITH_AS(ops::add<dnn>().forward(dc, xf, b.d, yd), "add: a is f32 but b is bf16", shape_error);
    }
    SUBCASE("add with its ReLU rounds once, and its output masks the ReLU's gradient as the sum would") {
        tensor<ref> yr, dxr;
        tensor<dnn> yd, dxd;
        ops::add<ref>().forward_relu(rc, x.r, b.r, yr);
        ops::add<dnn>().forward_relu(dc, x.d, b.d, yd);
        CHECK(yd.dtype() == dtype::bf16);
        CHECK(yd.to_host(dc) == bf16_rounded(yr.to_host(rc)));
        tensor<ref> sr;
        ops::add<ref>().forward(rc, x.r, b.r, sr);
        ops::relu<ref>().backward(rc, sr, x.r, dxr);
        ops::relu<dnn>().backward(dc, yd, x.d, dxd);
        CHECK(dxd.to_host(dc) == dxr.to_host(rc));
    }
    SUBCASE("max pooling (the ImageNet stem's 3x3, stride 2, pad 1)") {
        const ops::pool2d_params p{ops::pool_kind::max, 3, 3, 2, 2, 1, 1};
        ops::pool2d<ref> rop(p);
        ops::pool2d<dnn> dop(p);
        tensor<ref> yr, dxr;
        tensor<dnn> yd, dxd;
        rop.forward(rc, x.r, yr);
        dop.forward(dc, x.d, yd);
        CHECK(yd.dtype() == dtype::bf16);
        CHECK(yd.to_host(dc) == yr.to_host(rc));  // a selection of bf16 values
        auto dy = both(rc, dc, yr.shape(), random_values(yr.numel(), 10));
        rop.backward(rc, dy.r, dxr);
        dop.backward(dc, dy.d, dxd);
        CHECK(dxd.dtype() == dtype::bf16);
        // Overlapping windows add up to a few gradients in one input: one rounding.
        testing::expect_close(dxd.to_host(dc), dxr.to_host(rc), bf16_rtol, 0.0, "input gradient");
    }
    SUBCASE("global average pooling gives fp32 features and a bf16 gradient") {
        ops::global_avg_pool<ref> rop;
        ops::global_avg_pool<dnn> dop;
        tensor<ref> yr, dxr;
        tensor<dnn> yd, dxd;
        rop.forward(rc, x.r, yr);
        dop.forward(dc, x.d, yd);
        CHECK(yd.dtype() == dtype::f32);
        testing::expect_close(yd.to_host(dc), yr.to_host(rc), bf16_rtol, 1e-4, "features");
        const auto dyv = random_values(yr.numel(), 11);
        auto dyr = testing::make(rc, yr.shape(), dyv);
        auto dyd = testing::make(dc, yr.shape(), dyv);  // the head's fp32 gradient
        rop.backward(rc, dyr, dxr);
        dop.backward(dc, dyd, dxd);
        CHECK(dxd.dtype() == dtype::bf16);
        // The head's fp32 gradient is rounded to bf16, then divided by H x W and rounded
        // again: two roundings.
        testing::expect_close(dxd.to_host(dc), dxr.to_host(rc), 2 * bf16_rtol, 0.0, "input gradient");
    }
}

TEST_CASE("onednn bf16: a ResNet's logits and fp32 weight gradients stay as near fp32 as its own sensitivity allows") {
    MICLE_SKIP_WITHOUT_BF16();
    auto lo = mixed_context();
    context<dnn> hi;
    for (const auto stem : {models::stem_kind::small, models::stem_kind::imagenet}) {
        CAPTURE(int(stem));
        testing::check_bf16_drift(testing::resnet_bf16_drift(lo, hi, stem));
    }
}

TEST_CASE("onednn bf16: a SimCLR learner step matches fp32, and LARS drives the loss down as in fp32") {
    MICLE_SKIP_WITHOUT_BF16();
    auto run = [&](bool bf16) {
        onednn_options o;
        o.bf16 = bf16;
        return testing::fixed_batch_losses<dnn>(o);
    };
    const auto mixed = run(true), full = run(false);
    testing::check_tracks_fp32(mixed, full);
}

TEST_CASE("onednn bf16: a checkpoint of a bf16 run loads in fp32 and on the reference backend unchanged") {
    MICLE_SKIP_WITHOUT_BF16();
    using L = testing::simclr_lars<dnn>;
    const auto cfg = testing::tiny_config<L>();
    const auto dir = std::filesystem::temp_directory_path() / "micle_test_bf16_checkpoint";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto lo = mixed_context();
    L learner(lo, cfg);
    const auto views = testing::noisy_view_pairs();
    const auto x = tensor<dnn>::from_host(lo, {12, 3, 8, 8}, views);
    for (int s = 0; s < 3; ++s) learner.step(x, 1.0f);
    const auto path = (dir / "bf16.safetensors").string();
    train::save_weights(path, lo, learner.backbone().state());

    const shape xs{2, 3, 8, 8};
    const std::vector<float> probe(views.begin(), views.begin() + xs.numel());
    context<dnn> hi;
    models::resnet<dnn> f32_model(hi, cfg.backbone, 99);
    auto fs = f32_model.state();
    CHECK(train::load_weights(path, hi, fs).missing.empty());
    context<ref> rc;
    models::resnet<ref> ref_model(rc, cfg.backbone, 99);
    auto rs = ref_model.state();
    CHECK(train::load_weights(path, rc, rs).missing.empty());
    // Weights identical: the fp32 model computes what the reference computes.
    const auto a = f32_model.forward(hi, tensor<dnn>::from_host(hi, xs, probe), false).to_host(hi);
    const auto b = ref_model.forward(rc, tensor<ref>::from_host(rc, xs, probe), false).to_host(rc);
    testing::expect_close(a, b, 1e-4, 1e-4, "features of the loaded weights");
    auto sa = learner.backbone().state();
    auto sb = ref_model.state();
    for (std::size_t i = 0; i < sa.params.size(); ++i) {
        CAPTURE(sa.params[i]->name);
        CHECK(sa.params[i]->value.to_host(lo) == sb.params[i]->value.to_host(rc));
    }
    std::filesystem::remove_all(dir);
}

}  // namespace micle
#endif
