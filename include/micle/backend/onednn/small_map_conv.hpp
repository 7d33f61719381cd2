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
// products are oneDNN matmul primitives; building W' from the weights and summing G's
// blocks into dW are copies and additions of contiguous rows of O values.
//
// In mixed precision (type bf16) X, Y, their gradients and W' are bf16 (W' converted from
// the fp32 weights by a reorder), the products accumulate in fp32, and G and dW are fp32.
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
    /// bf16 too: allowing twice as many made ResNet-50 at 64 px 30% slower, the cost of
    /// expanding the weights each step).
    static bool pays(const ops::conv2d_params& p, const shape& x, bool has_bias) {
        return !has_bias && x[2] * x[3] <= p.kernel_h * p.kernel_w;
    }
    small_map_conv(context<onednn>& ctx, const ops::conv2d_params& p, const shape& x, const shape& w, const shape& y,
                   dtype type = dtype::f32)
        : n_(x[0]), c_(x[1]), o_(w[0]), q_(x[2] * x[3]), p_(y[2] * y[3]), taps_(w[2] * w[3]) {
        using tag = dnnl::memory::format_tag;
        const auto f32 = dnnl::memory::data_type::f32, t = to_dnnl(type);
        const auto& eng = ctx.engine();
        x_nhwc_ = md(to_dims(x), t, tag::nhwc);
        y_nhwc_ = md(to_dims(y), t, tag::nhwc);
        w_io_ = md(to_dims(w), f32, tag::bcda);  // [C, kh, kw, O]: a tap's C x O slice is rows of O
        tap_.assign(std::size_t(q_ * p_), -1);
        for (std::int64_t oh = 0; oh < y[2]; ++oh)
            for (std::int64_t ow = 0; ow < y[3]; ++ow)
                for (std::int64_t ih = 0; ih < x[2]; ++ih)
                    for (std::int64_t iw = 0; iw < x[3]; ++iw) {
                        const std::int64_t kh = ih - oh * p.stride_h + p.pad_h, kw = iw - ow * p.stride_w + p.pad_w;
                        if (kh >= 0 && kh < p.kernel_h && kw >= 0 && kw < p.kernel_w)
                            tap_[std::size_t((ih * x[3] + iw) * p_ + oh * y[3] + ow)] = std::int32_t(kh * p.kernel_w + kw);
                    }
        const std::int64_t rows = q_ * c_, cols = p_ * o_;
        x2_ = md({n_, rows}, t, tag::ab);
        y2_ = md({n_, cols}, t, tag::ab);
        const md big({rows, cols}, f32, tag::ab), big_t({rows, cols}, t, tag::ab);
        dense32_ = dnnl::memory(big, eng);
        std::memset(dense32_.get_data_handle(), 0, big.get_size());  // blocks no tap joins stay zero
        dense_ = type == dtype::f32 ? dense32_ : dnnl::memory(big_t, eng);
        grad_ = dnnl::memory(big, eng);
        w_t_ = dnnl::memory(w_io_, eng);
        dw_t_ = dnnl::memory(w_io_, eng);
        const md dense_t({cols, rows}, t, dnnl::memory::dims{1, cols});  // W'^T, a view
        const md x_t({rows, n_}, t, dnnl::memory::dims{1, rows});       // X^T, a view
        fwd_ = dnnl::matmul(onednn_compat::matmul_pd(eng, x2_, big_t, y2_));
        bwd_data_ = dnnl::matmul(onednn_compat::matmul_pd(eng, y2_, dense_t, x2_));
        bwd_weights_ = dnnl::matmul(onednn_compat::matmul_pd(eng, x_t, y2_, big));
        dense_t_ = dnnl::memory(dense_t, eng, dense_.get_data_handle());
        x_t_ = x_t;
    }

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
        ctx.synchronize();
        auto* dwt = static_cast<float*>(dw_t_.get_data_handle());
        const auto* g = static_cast<const float*>(grad_.get_data_handle());
        std::fill_n(dwt, c_ * taps_ * o_, 0.0f);
        for_each_block([&](std::int64_t q, std::int64_t p, std::int32_t t) {
            for (std::int64_t c = 0; c < c_; ++c) {
                const float* src = g + ((q * c_ + c) * p_ + p) * o_;
                float* dst = dwt + (c * taps_ + t) * o_;
                for (std::int64_t i = 0; i < o_; ++i) dst[i] += src[i];
            }
        });
        dw_out_.copy(ctx, dw_t_, dw.memory());
    }

private:
    template <class F>
    void for_each_block(F&& f) const {
        for (std::int64_t q = 0; q < q_; ++q)
            for (std::int64_t p = 0; p < p_; ++p)
                if (const std::int32_t t = tap_[std::size_t(q * p_ + p)]; t >= 0) f(q, p, t);
    }

    void expand(context<onednn>& ctx, const tensor<onednn>& w) {
        w_in_.copy(ctx, w.memory(), w_t_);
        ctx.synchronize();
        const auto* wt = static_cast<const float*>(w_t_.get_data_handle());
        auto* big = static_cast<float*>(dense32_.get_data_handle());
        for_each_block([&](std::int64_t q, std::int64_t p, std::int32_t t) {
            for (std::int64_t c = 0; c < c_; ++c)
                std::memcpy(big + ((q * c_ + c) * p_ + p) * o_, wt + (c * taps_ + t) * o_, std::size_t(o_) * sizeof(float));
        });
        if (dense_.get() != dense32_.get()) to_bf16_.copy(ctx, dense32_, dense_);
        expanded_from_ = w.memory().get_data_handle();
    }


    std::int64_t n_, c_, o_, q_, p_, taps_;
    std::vector<std::int32_t> tap_;  // [q * P + p]: the kernel tap joining input q and output p, or -1
    md x_nhwc_, y_nhwc_, w_io_, x2_, y2_, x_t_;
    dnnl::memory dense32_, dense_, dense_t_, grad_, w_t_, dw_t_;  // dense_ is dense32_ in fp32
    dnnl::matmul fwd_, bwd_data_, bwd_weights_;
    stage x_in_, dy_in_, w_in_, dw_out_, to_bf16_;
    const void* expanded_from_ = nullptr;
};

}  // namespace micle::onednn_detail
