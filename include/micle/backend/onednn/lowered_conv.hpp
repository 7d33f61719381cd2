#pragma once
// A convolution as matrix products over NHWC activations (im2col): used by conv2d<onednn>
// in bf16 for 1x1 convolutions and convolutions onto small maps, where oneDNN 2.6's AMX
// convolution kernels use the tiles poorly and its AMX matrix product does not; in fp32, on
// AVX-512 CPUs, for convolutions onto maps of at most 4 positions, for the same reason.
// The measurements behind each rule: docs/log/performance-2026-12-08.md#what-changed-convolutions-on-small-maps-as-amx-matrix-products.
//
// With M = N*OH*OW output positions, the input's columns
//   col [M, kh*kw*C],  col[(n, oh, ow), (i*kw + j)*C + c] = Xpad[n, oh*sh + i, ow*sw + j, c]
// (Xpad: the input with its zero border) and the weights as W [O, kh*kw*C] (OIHW's `acdb`
// layout, [O, kh, kw, C]):
//   forward          Y [M, O] = col . W^T           (where forward_pays)
//   weight gradient  dW [O, kh*kw*C] = dY^T [O, M] . col
// Y and dY are NHWC, so [M, O] row-major; W^T and dY^T are read through transposed
// strides, no copy. col is built by one reorder per tap, from a strided view of Xpad into a
// strided view of col (Xpad is a zeroed buffer the input is copied into each pass); a 1x1
// convolution with stride 1 and no padding reads X itself. For the maps this is used on,
// col is a few MB.
//
// Data gradient. The gradient of col is dcol [M, kh*kw*C] = dY [M, O] . W [O, kh*kw*C],
// and dX is col's transpose applied to it (col2im): each tap's C columns are added onto
// the strided view of dXpad that the tap reads, one accumulating reorder per tap into an
// fp32 buffer, whose interior is then written to dX in its type (positions a stride skips
// get zero). A 1x1 convolution with stride 1 and no padding needs no sums:
// dX [M, C] = dY [M, O] . W [O, C].
//
// bf16 values are multiplied with fp32 accumulation; dW and the col2im sums are fp32; Y
// and dX are rounded once to bf16. The weights' bf16 copy made by a lowered forward is
// reused by the backward_data that follows it. fp32 inputs work the same way.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::onednn_detail {

class lowered_conv {
public:
    /// Whether the lowered gradients beat oneDNN 2.6's AMX kernels, as bench/bench_conv
    /// measured: for every 1x1 convolution and for larger kernels onto maps of at most 16
    /// positions; from 8x8 maps on, the direct kernels win or tie. Only measured with AMX:
    /// CPUs with AVX512-BF16 and no AMX (Zen 4) keep oneDNN's kernels, and so do
    /// convolutions with a bias.
    /// `without_amx` drops the AMX condition (conv2d::allow_lowered(true, true): comparisons
    /// on CPUs with AVX512-BF16 and no AMX).
    static bool pays(const ops::conv2d_params& p, const shape& y, bool has_bias, bool without_amx = false) {
        return (without_amx || cpu_has_amx()) && !has_bias && ((p.kernel_h == 1 && p.kernel_w == 1) || y[2] * y[3] <= 16);
    }

    /// The same in fp32, onto maps of at most 4 positions (ResNet's layer4 at 64 px), where
    /// oneDNN 2.6's fp32 weight-gradient kernels lag its matrix product. On AVX2 CPUs only
    /// kernels larger than 1x1 pay (the 1x1 ones tied or lost over their three passes). From
    /// 4x4 maps on oneDNN's kernels keep the shapes. Measured:
    /// docs/log/performance-2026-12-08.md#again-on-a-2-vcpu-avx2-epyc-2026-12-01-layer4s-3x3-stride-2-convolution-lowered.
    static bool pays_fp32(const ops::conv2d_params& p, const shape& y, bool has_bias) {
        if (has_bias || y[2] * y[3] > 4) return false;
        return cpu_has_avx512() || (cpu_has_avx2() && (p.kernel_h > 1 || p.kernel_w > 1));
    }

    /// Whether the lowered forward beats oneDNN's AMX forward kernel, which does well on
    /// stride-1 convolutions onto 4x4 maps and more and on narrow strided ones, and poorly
    /// on strided convolutions from 256 channels and onto 2x2 maps.
    static bool forward_pays(const ops::conv2d_params& p, const shape& x, const shape& y) {
        return ((p.stride_h > 1 || p.stride_w > 1) && x[1] >= 256) || y[2] * y[3] <= 4;
    }

    lowered_conv(context<onednn>& ctx, const ops::conv2d_params& p, const shape& x, const shape& w,
                       const shape& y, dtype type)
        : p_(p), m_(y[0] * y[2] * y[3]), c_(x[1]), o_(w[0]), taps_(w[2] * w[3]), lowers_forward_(forward_pays(p, x, y)) {
        using tag = dnnl::memory::format_tag;
        using dims = dnnl::memory::dims;
        const auto f32 = dnnl::memory::data_type::f32, t = to_dnnl(type);
        const auto& eng = ctx.engine();
        x_nhwc_ = md(to_dims(x), t, tag::nhwc);
        y_nhwc_ = md(to_dims(y), t, tag::nhwc);
        dw_ohwi_ = md(to_dims(w), f32, tag::acdb);
        w_ohwi_ = md(to_dims(w), t, tag::acdb);
        dy_t_ = md({o_, m_}, t, dims{1, o_});  // dY^T: a view of dY
        dy2_ = md({m_, o_}, t, tag::ab);
        dw2_ = md({o_, taps_ * c_}, f32, tag::ab);
        const bool is_1x1 = w[2] == 1 && w[3] == 1;
        reads_x_ = is_1x1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
        col2_ = md({m_, taps_ * c_}, t, tag::ab);
        if (!reads_x_) build_columns(ctx, x, y, t);
        weights_ = dnnl::matmul(onednn_compat::matmul_pd(eng, dy_t_, col2_, dw2_));
        w_t_ = md({taps_ * c_, o_}, t, dims{1, taps_ * c_});  // W^T: a view of W
        w2_ = md({o_, taps_ * c_}, t, tag::ab);
        forward_ = dnnl::matmul(onednn_compat::matmul_pd(eng, col2_, w_t_, dy2_));
        if (reads_x_) {
            data_ = dnnl::matmul(onednn_compat::matmul_pd(eng, dy2_, md({o_, c_}, t, tag::ab), col2_));
        } else {
            build_col2im(ctx, x, y, t);
        }
    }

    /// The layout of fp32 weights (and their gradient) that the matrix products read as
    /// W [O, kh*kw*C]: `acdb` of OIHW. Weights kept in it are only converted to the
    /// compute type, and their gradient is written in place.
    md weights_desc() const { return dw_ohwi_; }

    /// Whether forward is lowered too (forward_pays); if not, conv2d runs oneDNN's forward.
    bool lowers_forward() const noexcept { return lowers_forward_; }

    /// Y (NHWC) for the weights `w` (fp32, any layout; converted to the compute type).
    void forward(context<onednn>& ctx, const tensor<onednn>& x, const tensor<onednn>& w, tensor<onednn>& y) {
        const auto& wm = convert(ctx, w);
        converted_for_backward_ = w.memory().get_data_handle();
        const auto& xm = x_in_.get(ctx, x.memory(), x_nhwc_);
        y.ensure(ctx, y_nhwc_);
        forward_.execute(ctx.stream(), {{DNNL_ARG_SRC, columns(ctx, xm)},
                                        {DNNL_ARG_WEIGHTS, view(ctx, w_t_, wm)},
                                        {DNNL_ARG_DST, view(ctx, dy2_, y.memory())}});
    }

    /// dW into `dw`, in dw's layout.
    void backward_weights(context<onednn>& ctx, const tensor<onednn>& x, const tensor<onednn>& dy, tensor<onednn>& dw) {
        const auto& xm = x_in_.get(ctx, x.memory(), x_nhwc_);
        const auto& dym = dy_in_.get(ctx, dy.memory(), y_nhwc_);
        const auto cols = columns(ctx, xm);
        const auto& dwm = dw_out_.target(ctx, dw.memory(), dw_ohwi_);
        weights_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, dy_t_, dym)},
                                        {DNNL_ARG_WEIGHTS, cols},
                                        {DNNL_ARG_DST, view(ctx, dw2_, dwm)}});
        dw_out_.flush(ctx, dwm, dw.memory());
    }

    /// dX for the weights `w` (fp32, any layout; the bf16 copy forward made of them, or a
    /// new one for other weights).
    void backward_data(context<onednn>& ctx, const tensor<onednn>& dy, const tensor<onednn>& w, tensor<onednn>& dx) {
        const auto& dym = dy_in_.get(ctx, dy.memory(), y_nhwc_);
        // The copy forward just made, if it ran lowered on these weights; otherwise (oneDNN's
        // forward, other weights, or weights updated in place since) a new one.
        const auto& wm = w.memory().get_data_handle() == converted_for_backward_ ? converted_ : convert(ctx, w);
        converted_for_backward_ = nullptr;
        dx.ensure(ctx, x_nhwc_);
        const auto w2 = view(ctx, w2_, wm);
        if (reads_x_) {
            data_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, dy2_, dym)},
                                         {DNNL_ARG_WEIGHTS, w2},
                                         {DNNL_ARG_DST, view(ctx, col2_, dx.memory())}});
            return;
        }
        data_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, dy2_, dym)}, {DNNL_ARG_WEIGHTS, w2}, {DNNL_ARG_DST, dcol_}});
        ctx.synchronize();
        std::memset(dxpad_.get_data_handle(), 0, dxpad_.get_desc().get_size());
        col2im_.run(ctx);
        dx_out_.copy(ctx, dxpad_interior_, dx.memory());
    }

private:
    /// The weights as W [O, kh*kw*C] in the compute type.
    const dnnl::memory& convert(context<onednn>& ctx, const tensor<onednn>& w) {
        converted_ = w_in_.get(ctx, w.memory(), w_ohwi_);
        return converted_;
    }

    /// col [M, kh*kw*C] of the NHWC input `xm`.
    dnnl::memory columns(context<onednn>& ctx, const dnnl::memory& xm) {
        if (reads_x_) return view(ctx, col2_, xm);
        pad_in_.copy(ctx, xm, interior_);
        im2col_.run(ctx);
        return col_;
    }

    // col's buffer, the framed input and one reorder per tap.
    void build_columns(context<onednn>& ctx, const shape& x, const shape& y, dnnl::memory::data_type t) {
        const auto& eng = ctx.engine();
        col_ = dnnl::memory(col2_, eng);
        padded_ = framed(ctx, x, y, t);
        interior_ = interior(ctx, padded_, x);
        for_each_tap(x, y, t, [&](const md& from, const md& to) {
            im2col_.add(eng, from, padded_, to, col_, onednn_compat::make_reorder(eng, from, to));
        });
    }

    /// The frame around an input: its zero border (the padding), widened where needed so
    /// that every tap's strided view spans whole rows of it: rows of max(H + 2*ph, OH*sh)
    /// and columns of max(W + 2*pw, OW*sw). (oneDNN refuses a view of OH rows of stride
    /// sh*W' into a map of fewer than OH*sh rows, as a 1x1 stride-2 view of a 7x7 map
    /// would be.)
    std::int64_t frame_h(const shape& x, const shape& y) const { return std::max(x[2] + 2 * p_.pad_h, y[2] * p_.stride_h); }
    std::int64_t frame_w(const shape& x, const shape& y) const { return std::max(x[3] + 2 * p_.pad_w, y[3] * p_.stride_w); }

    /// A zeroed NHWC buffer of the framed input's size.
    dnnl::memory framed(context<onednn>& ctx, const shape& x, const shape& y, dnnl::memory::data_type t) const {
        dnnl::memory m(md(to_dims(shape{x[0], x[1], frame_h(x, y), frame_w(x, y)}), t, dnnl::memory::format_tag::nhwc),
                       ctx.engine());
        std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
        return m;
    }
    /// The input's place in a framed buffer.
    dnnl::memory interior(context<onednn>& ctx, const dnnl::memory& frame, const shape& x) const {
        return dnnl::memory(frame.get_desc().submemory_desc(to_dims(x), {0, 0, p_.pad_h, p_.pad_w}), ctx.engine(),
                            frame.get_data_handle());
    }

    // dcol's fp32 buffer, the fp32 zero-bordered dX and one accumulating reorder per tap.
    void build_col2im(context<onednn>& ctx, const shape& x, const shape& y, dnnl::memory::data_type t) {
        const auto f32 = dnnl::memory::data_type::f32;
        const auto& eng = ctx.engine();
        dcol_ = dnnl::memory(md({m_, taps_ * c_}, f32, dnnl::memory::format_tag::ab), eng);
        data_ = dnnl::matmul(onednn_compat::matmul_pd(eng, dy2_, md({o_, taps_ * c_}, t, dnnl::memory::format_tag::ab),
                                                      dcol_.get_desc()));
        dxpad_ = framed(ctx, x, y, f32);
        dxpad_interior_ = interior(ctx, dxpad_, x);
        for_each_tap(x, y, f32, [&](const md& pad_view, const md& col_view) {
            col2im_.add(eng, col_view, dcol_, pad_view, dxpad_,
                        onednn_compat::make_accumulating_reorder(eng, col_view, pad_view));
        });
    }

    /// For each tap (i, j): the view of the framed input it reads,
    /// Xpad[n, oh*sh + i, ow*sw + j, c], and its columns of col, col[(n, oh, ow), tap*C + c],
    /// both as [N, C, OH, OW].
    template <class F>
    void for_each_tap(const shape& x, const shape& y, dnnl::memory::data_type t, F&& f) const {
        using dims = dnnl::memory::dims;
        const std::int64_t hp = frame_h(x, y), wp = frame_w(x, y), c = x[1];
        const dims out{x[0], c, y[2], y[3]};
        for (std::int64_t i = 0; i < p_.kernel_h; ++i)
            for (std::int64_t j = 0; j < p_.kernel_w; ++j) {
                f(strided_md(out, t, dims{hp * wp * c, 1, p_.stride_h * wp * c, p_.stride_w * c}, (i * wp + j) * c),
                  strided_md(out, t, dims{y[2] * y[3] * taps_ * c, 1, y[3] * taps_ * c, taps_ * c}, (i * p_.kernel_w + j) * c));
            }
    }


    ops::conv2d_params p_;
    std::int64_t m_, c_, o_, taps_;
    bool lowers_forward_, reads_x_ = false;
    md x_nhwc_, y_nhwc_, dw_ohwi_, w_ohwi_, w_t_, w2_, dy_t_, dy2_, dw2_, col2_;
    dnnl::memory col_, padded_, interior_, dcol_, dxpad_, dxpad_interior_;
    reorder_list im2col_, col2im_;
    dnnl::matmul forward_, weights_, data_;
    stage x_in_, dy_in_, w_in_, dw_out_, pad_in_, dx_out_;
    dnnl::memory converted_;
    // The weights whose copy a lowered forward just made (converted_), for the backward_data
    // that follows it; cleared there, so that weights updated in place are converted again.
    const void* converted_for_backward_ = nullptr;
};

}  // namespace micle::onednn_detail
