#pragma once
// A convolution over a feature map no larger than its kernel, as one matrix product per
// pass: used by conv2d<onednn> for ResNet's 3x3 convolutions on the 2x2 maps of layer4 at
// 64 px, where oneDNN's direct kernels spend most of their multiply-adds on zero padding
// (a 3x3 kernel on a 2x2 map touches 4 of its 9 taps per output).
//
// On an H x W map, a convolution is a linear map from the C*H*W input values to the
// O*OH*OW outputs. Written out as a dense matrix W' [H*W*C, OH*OW*O] it costs
// H*W / (kh*kw) of the direct convolution's multiply-adds, so it pays when the map has no
// more positions than the kernel has taps. Block (q, p) of W' (input position q, output
// position p) is the C x O slice of the weights at the tap that joins them, or zero:
//   forward         Y [N, OH*OW*O]  = X [N, H*W*C] . W'
//   backward data   dX [N, H*W*C]   = dY . W'^T
//   backward weights G [H*W*C, OH*OW*O] = X^T . dY, and dW at tap t is the sum of G's
//                    blocks (q, p) joined by t.
// X and Y are NHWC, so that the rows of these matrices are rows of the tensors. The three
// products are oneDNN matmul primitives. The weights are first laid out as [C, kh, kw, O]
// (one reorder), where a tap's C x O slice is C rows of O values; building W' and summing
// G's blocks into dW are then one oneDNN reorder per block between such strided views
// (the sums as accumulating reorders), multithreaded like the products. Weights kept in
// that layout (weights_desc(): conv2d<onednn>::preferred_weights_desc, which a layer
// adopts) are read and their gradient written in place, without the transposes.
//
// In mixed precision (type bf16) X, Y, their gradients and W' are bf16 (the weights
// converted by the first reorder), the products accumulate in fp32, and G and dW are fp32.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::onednn_detail {

class small_map_conv {
public:
    /// Whether the dense form does no more multiply-adds than the direct convolution (in
    /// bf16 too: allowing more cost more in expanding the weights each step than it saved;
    /// docs/log/performance-2026-12-08.md#fp32-convolutions-onto-2x2-maps-as-matrix-products-commit-b74435a).
    static bool pays(const ops::conv2d_params& p, const shape& x, bool has_bias) {
        return !has_bias && x[2] * x[3] <= p.kernel_h * p.kernel_w;
    }
    small_map_conv(context<onednn>& ctx, const ops::conv2d_params& p, const shape& x, const shape& w, const shape& y,
                   dtype type = dtype::f32)
        : n_(x[0]), c_(x[1]), o_(w[0]), q_(x[2] * x[3]), p_(y[2] * y[3]), taps_(w[2] * w[3]) {
        using tag = dnnl::memory::format_tag;
        using dims = dnnl::memory::dims;
        const auto f32 = dnnl::memory::data_type::f32, t = to_dnnl(type);
        const auto& eng = ctx.engine();
        x_nhwc_ = md(to_dims(x), t, tag::nhwc);
        y_nhwc_ = md(to_dims(y), t, tag::nhwc);
        const std::int64_t rows = q_ * c_, cols = p_ * o_;
        x2_ = md({n_, rows}, t, tag::ab);
        y2_ = md({n_, cols}, t, tag::ab);
        const md big({rows, cols}, f32, tag::ab), big_t({rows, cols}, t, tag::ab);
        dense_ = dnnl::memory(big_t, eng);
        std::memset(dense_.get_data_handle(), 0, big_t.get_size());  // blocks no tap joins stay zero
        grad_ = dnnl::memory(big, eng);
        w_t_ = dnnl::memory(md(to_dims(w), t, tag::bcda), eng);  // [C, kh, kw, O]
        dw_t_ = dnnl::memory(md(to_dims(w), f32, tag::bcda), eng);
        std::memset(dw_t_.get_data_handle(), 0, dw_t_.get_desc().get_size());  // taps no block joins stay zero
        const md dense_t({cols, rows}, t, dims{1, cols});  // W'^T, a view
        const md x_t({rows, n_}, t, dims{1, rows});       // X^T, a view
        fwd_ = dnnl::matmul(onednn_compat::matmul_pd(eng, x2_, big_t, y2_));
        bwd_data_ = dnnl::matmul(onednn_compat::matmul_pd(eng, y2_, dense_t, x2_));
        bwd_weights_ = dnnl::matmul(onednn_compat::matmul_pd(eng, x_t, y2_, big));
        dense_t_ = dnnl::memory(dense_t, eng, dense_.get_data_handle());
        x_t_ = x_t;

        // Block (q, p) of W' (and of G) is rows q*C.. of columns p*O..; tap t's slice of the
        // [C, kh, kw, O] weights is rows of stride taps*O from t*O. Input position q = (ih, iw)
        // meets output position p = (oh, ow) at tap (ih - oh*sh + ph, iw - ow*sw + pw), if any.
        std::vector<bool> summed(std::size_t(taps_), false);
        for (std::int64_t q = 0; q < q_; ++q)
            for (std::int64_t pp = 0; pp < p_; ++pp) {
                const std::int64_t kh = q / x[3] - pp / y[3] * p.stride_h + p.pad_h,
                                   kw = q % x[3] - pp % y[3] * p.stride_w + p.pad_w;
                if (kh < 0 || kh >= p.kernel_h || kw < 0 || kw >= p.kernel_w) continue;
                const std::int64_t tp = kh * p.kernel_w + kw;
                const md w_slice = strided_md({c_, o_}, t, dims{taps_ * o_, 1}, tp * o_),
                         w_block = strided_md({c_, o_}, t, dims{cols, 1}, q * c_ * cols + pp * o_);
                expand_.add(eng, w_slice, w_t_, w_block, dense_, onednn_compat::make_reorder(eng, w_slice, w_block));
                const md g_block = strided_md({c_, o_}, f32, dims{cols, 1}, q * c_ * cols + pp * o_),
                         dw_slice = strided_md({c_, o_}, f32, dims{taps_ * o_, 1}, tp * o_);
                // The first block of a tap writes its slice, the others add onto it.
                sum_.add(eng, g_block, grad_, dw_slice, dw_t_,
                         summed[std::size_t(tp)] ? onednn_compat::make_accumulating_reorder(eng, g_block, dw_slice)
                                                 : onednn_compat::make_reorder(eng, g_block, dw_slice));
                summed[std::size_t(tp)] = true;
            }
        every_tap_ = std::find(summed.begin(), summed.end(), false) == summed.end();
    }

    /// The layout of fp32 weights (and their gradient) that needs no transposes:
    /// [C, kh, kw, O], `bcda` of OIHW.
    md weights_desc() const { return dw_t_.get_desc(); }

    void forward(context<onednn>& ctx, const tensor<onednn>& x, const tensor<onednn>& w, tensor<onednn>& y) {
        expand(ctx, w);
        const auto& xm = x_in_.get(ctx, x.memory(), x_nhwc_);
        y.ensure(ctx, y_nhwc_);
        fwd_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, x2_, xm)},
                                    {DNNL_ARG_WEIGHTS, dense_},
                                    {DNNL_ARG_DST, view(ctx, y2_, y.memory())}});
    }

    void backward_data(context<onednn>& ctx, const tensor<onednn>& dy, const tensor<onednn>& w, tensor<onednn>& dx) {
        if (w.memory().get_data_handle() != expanded_from_) expand(ctx, w);  // other weights than forward's
        const auto& dym = dy_in_.get(ctx, dy.memory(), y_nhwc_);
        dx.ensure(ctx, x_nhwc_);
        bwd_data_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, y2_, dym)},
                                         {DNNL_ARG_WEIGHTS, dense_t_},
                                         {DNNL_ARG_DST, view(ctx, x2_, dx.memory())}});
    }

    /// dW into `dw`, in dw's layout.
    void backward_weights(context<onednn>& ctx, const tensor<onednn>& x, const tensor<onednn>& dy, tensor<onednn>& dw) {
        const auto& xm = x_in_.get(ctx, x.memory(), x_nhwc_);
        const auto& dym = dy_in_.get(ctx, dy.memory(), y_nhwc_);
        bwd_weights_.execute(ctx.stream(), {{DNNL_ARG_SRC, view(ctx, x_t_, xm)},
                                            {DNNL_ARG_WEIGHTS, view(ctx, y2_, dym)},
                                            {DNNL_ARG_DST, grad_}});
        // Straight into dw when it has the [C, kh, kw, O] layout and every tap gets a sum
        // (else the taps no block joins must stay zero, as in dw_t_).
        const bool in_place = every_tap_ && dw.desc() == dw_t_.get_desc();
        sum_.rebind_to(in_place ? dw.memory().get_data_handle() : dw_t_.get_data_handle());
        sum_.run(ctx);
        if (!in_place) dw_out_.copy(ctx, dw_t_, dw.memory());
    }

private:
    void expand(context<onednn>& ctx, const tensor<onednn>& w) {
        const bool in_place = w.desc() == w_t_.get_desc();  // fp32 weights in [C, kh, kw, O]
        if (!in_place) w_in_.copy(ctx, w.memory(), w_t_);
        expand_.rebind_from(in_place ? w.memory().get_data_handle() : w_t_.get_data_handle());
        expand_.run(ctx);
        expanded_from_ = w.memory().get_data_handle();
    }


    std::int64_t n_, c_, o_, q_, p_, taps_;
    md x_nhwc_, y_nhwc_, x2_, y2_, x_t_;
    dnnl::memory dense_, dense_t_, grad_, w_t_, dw_t_;
    dnnl::matmul fwd_, bwd_data_, bwd_weights_;
    reorder_list expand_, sum_;  // W' from the weights' taps; dW's taps from G's blocks
    stage x_in_, dy_in_, w_in_, dw_out_;
    const void* expanded_from_ = nullptr;
    bool every_tap_ = false;  // whether some block of G sums into each tap of dW
};

}  // namespace micle::onednn_detail
