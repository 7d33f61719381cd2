#pragma once
// The weight gradient of a stride-2 convolution over a few input channels (ResNet's 7x7
// stem on RGB or grayscale images) as the weight gradient of a stride-1 convolution over
// the input rearranged space-to-depth: used by conv2d<onednn> in bf16 with AMX, where
// oneDNN 2.6's kernel for the strided gradient over 1-3 channels keeps the AMX tiles mostly
// empty and the rearranged form (4x the channels, stride 1) fills them. Measured:
// docs/log/performance-2026-12-08.md#the-stems-weight-gradient-space-to-depth-in-bf16-with-amx-commit-0103985.
//
// With stride 2, kernel kh x kw and padding ph, pw, output row oh reads padded input row
// 2*oh + i, i < kh. Write i = 2*a + dy (dy in {0, 1}, a < KH = ceil(kh / 2)) and padded row
// r = 2*R + dy: the tap reads rearranged row R = oh + a, parity dy. So with
//   X' [N, 4C, HS, WS],  X'[n, (dy*2 + dx)*C + c, R, S] = Xpad[n, c, 2R + dy, 2S + dx]
// (HS = OH + KH - 1, WS = OW + KW - 1; zero outside the input) and
//   W' [O, 4C, KH, KW],  W'[o, (dy*2 + dx)*C + c, a, b] = W[o, c, 2a + dy, 2b + dx]
// (zero where 2a + dy >= kh or 2b + dx >= kw), the convolution is the stride-1, unpadded
// convolution of X' with W', and dW is read off dW' at the taps that exist in W.
//
// Forward and the data gradient keep oneDNN's strided kernels (the rearranged forward is
// slower). X' is built by 4 reorders (one per parity), from strided views of the NHWC
// input into strided views of a buffer whose zero cells never change (one more where an
// odd map leaves a last row); dW' is spread by 4 reorders of strided views over a frame
// whose [O, C, kh, kw] corner is reordered into dW (a few thousand values).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::onednn_detail {

class space_to_depth_grad {
public:
    /// Stride 2 both ways, at most 4 input channels, kernels of 5 and more (the shapes
    /// measured), no bias, and AMX (the rearranged gradient only measured there; `anywhere`
    /// drops that condition, for tests on CPUs with AVX512-BF16 alone).
    static bool pays(const ops::conv2d_params& p, const shape& x, bool has_bias, bool anywhere = false) {
        return (anywhere || cpu_has_amx()) && !has_bias && p.stride_h == 2 && p.stride_w == 2 && x[1] <= 4 && p.kernel_h >= 5 &&
               p.kernel_w >= 5;
    }

    space_to_depth_grad(context<onednn>& ctx, const ops::conv2d_params& p, const shape& x, const shape& w,
                        const shape& y, dtype type) {
        using tag = dnnl::memory::format_tag;
        using dims = dnnl::memory::dims;
        const auto f32 = dnnl::memory::data_type::f32, t = to_dnnl(type);
        const auto& eng = ctx.engine();
        const std::int64_t n = x[0], c = x[1], h = x[2], wd = x[3], o = w[0], kh = w[2], kw = w[3];
        const std::int64_t ka = (kh + 1) / 2, kb = (kw + 1) / 2, hs = y[2] + ka - 1, ws = y[3] + kb - 1;
        x_nhwc_ = md(to_dims(x), t, tag::nhwc);
        const md xs(dims{n, 4 * c, hs, ws}, t, tag::nhwc), ys(to_dims(y), t, tag::nhwc);
        xs_ = dnnl::memory(xs, eng);
        std::memset(xs_.get_data_handle(), 0, xs.get_size());  // the cells no input lands in stay zero

        const dims one{1, 1}, none{0, 0};
        const md ws_any = any_md(shape{o, 4 * c, ka, kb});
        const auto hint = onednn_compat::conv_fwd_pd(eng, xs, any_md(shape{o, 4 * c, ka, kb}, type), nullptr, ys, one, none);
        pd_ = onednn_compat::conv_bwd_weights_pd(eng, xs, ws_any, nullptr, ys, one, none, hint);
        prim_ = onednn_compat::conv_bwd_weights(pd_);
        dws_ = dnnl::memory(pd_.diff_weights_desc(), eng);
        dws_plain_ = md(dims{o, 4 * c, ka, kb}, f32, tag::abcd);
        // dW' is spread over a frame of [O, C, 2*KH, 2*KW] (oneDNN refuses a view of KH rows of
        // stride 2 into kh < 2*KH rows); dW is the frame's [O, C, kh, kw] corner.
        const md frame(dims{o, c, 2 * ka, 2 * kb}, f32, tag::abcd);
        frame_ = dnnl::memory(frame, eng);
        frame_corner_ = dnnl::memory(frame.submemory_desc(to_dims(w), dims{0, 0, 0, 0}), eng, frame_.get_data_handle());
        // The tap reorders read dW' in plain order from wherever dws_in_ leaves it (dws_
        // itself, or the stage's buffer): bound per call, so built on no buffer here.
        const dnnl::memory dws_plain_unbound(dws_plain_, eng, DNNL_MEMORY_NONE);

        for (std::int64_t dy = 0; dy < 2; ++dy)
            for (std::int64_t dx = 0; dx < 2; ++dx) {
                const std::int64_t g = dy * 2 + dx;
                // Input rows h with (h + ph) % 2 == dy land in rearranged rows (h + ph) / 2; rows
                // past HS feed no output and are left out.
                const std::int64_t h0 = ((dy - p.pad_h) % 2 + 2) % 2, w0 = ((dx - p.pad_w) % 2 + 2) % 2;
                const std::int64_t r0 = (h0 + p.pad_h) / 2, s0 = (w0 + p.pad_w) / 2;
                const std::int64_t nh = std::min(h > h0 ? (h - h0 + 1) / 2 : 0, hs - r0),
                                   nw = std::min(wd > w0 ? (wd - w0 + 1) / 2 : 0, ws - s0);
                // oneDNN refuses a view of more than H/2 rows of stride 2 into an image of H
                // rows (odd H): the last such row goes in a reorder of its own.
                auto rows = [&](std::int64_t first, std::int64_t count) {
                    const dims part{n, c, count, nw};
                    const md from = strided_md(part, t, dims{h * wd * c, 1, 2 * wd * c, 2 * c}, ((h0 + 2 * first) * wd + w0) * c);
                    const md to = strided_md(part, t, dims{hs * ws * 4 * c, 1, ws * 4 * c, 4 * c},
                                             ((r0 + first) * ws + s0) * 4 * c + g * c);
                    rearrange_.add(eng, from, xs_, to, xs_, onednn_compat::make_reorder(eng, from, to));
                };
                if (nh > 0 && nw > 0) {
                    const std::int64_t bulk = std::min(nh, h / 2);
                    if (bulk > 0) rows(0, bulk);
                    if (bulk < nh) rows(bulk, nh - bulk);
                }
                // frame[o, c, 2a + dy, 2b + dx] = dW'[o, g*C + c, a, b].
                const dims taps{o, c, ka, kb};
                const md from = strided_md(taps, f32, dims{4 * c * ka * kb, ka * kb, kb, 1}, g * c * ka * kb);
                const md to = strided_md(taps, f32, dims{c * 4 * ka * kb, 4 * ka * kb, 4 * kb, 2}, dy * 2 * kb + dx);
                taps_.add(eng, from, dws_plain_unbound, to, frame_, onednn_compat::make_reorder(eng, from, to));
            }
    }

    /// dW into `dw`, in dw's layout.
    void backward_weights(context<onednn>& ctx, const tensor<onednn>& x, const tensor<onednn>& dy, tensor<onednn>& dw) {
        const auto& xm = x_in_.get(ctx, x.memory(), x_nhwc_);
        rearrange_.rebind_from(xm.get_data_handle());
        rearrange_.run(ctx);
        const auto& dym = dy_in_.get(ctx, dy.memory(), pd_.diff_dst_desc());
        prim_.execute(ctx.stream(), {{DNNL_ARG_SRC, xs_}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, dws_}});
        const auto& plain = dws_in_.get(ctx, dws_, dws_plain_);
        taps_.rebind_from(plain.get_data_handle());
        taps_.run(ctx);
        dw_out_.copy(ctx, frame_corner_, dw.memory());
    }

    /// oneDNN's implementation of the rearranged gradient.
    std::string impl() const { return pd_.impl_info_str(); }

private:
    md x_nhwc_, dws_plain_;
    dnnl::memory xs_, dws_, frame_, frame_corner_;
    onednn_compat::conv_bwd_weights::primitive_desc pd_;
    onednn_compat::conv_bwd_weights prim_;
    reorder_list rearrange_, taps_;
    stage x_in_, dy_in_, dws_in_, dw_out_;
};

}  // namespace micle::onednn_detail
