#pragma once
// Convolution on cuDNN: NHWC activations, KRSC weights, fp32 accumulation (TF32 tensor
// cores when the context allows them). Descriptors and the three algorithm choices are
// made once per (input, weight) shape and cached; the context's workspace is reused.
#include <utility>
#include <vector>

#include "micle/backend/cudnn/descriptors.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/shape_cache.hpp"

MICLE_CUDNN_LEGACY_BEGIN

namespace micle::cudnn_detail {

/// The first algorithm of cuDNN's heuristic ranking that succeeded, fits the workspace
/// limit, is deterministic when asked, and uses TF32 only when allowed.
template <class Perf>
const Perf& choose_algorithm(const std::vector<Perf>& perfs, int count, const cudnn_options& o, const char* what) {
    for (int i = 0; i < count; ++i) {
        const Perf& p = perfs[static_cast<std::size_t>(i)];
        if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.workspace_limit) continue;
        if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
        if (!o.allow_tf32 && p.mathType != CUDNN_FMA_MATH) continue;
        return p;
    }
    throw backend_error(detail::cat("conv2d: cuDNN offers no ", what, " algorithm for this shape within a ",
                                    o.workspace_limit, "-byte workspace", o.deterministic ? " that is deterministic" : "",
                                    o.allow_tf32 ? "" : " without TF32"));
}

}  // namespace micle::cudnn_detail

namespace micle::ops {

template <>
class conv2d<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit conv2d(conv2d_params p) : p_(p) {}
    const conv2d_params& params() const noexcept { return p_; }

    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("conv2d", "input", x.dtype());
        checks::f32("conv2d", "weight", w.dtype());
        const shape ys = checks::conv2d(p_, x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        x_shape_ = x.shape();
        auto& e = entry(ctx, x.shape(), w.shape());
        y.ensure(ctx, ys);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnConvolutionForward(ctx.dnn(), &one, e.x, x.f32(), e.w, w.f32(), e.fwd_conv, e.fwd_algo,
                                                 ctx.workspace(e.fwd_bytes), e.fwd_bytes, &zero, e.y, y.f32()));
        if (bias) MICLE_CUDA_CHECK(cudnnAddTensor(ctx.dnn(), &one, e.b, bias->f32(), &one, e.y, y.f32()));
    }

    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        check(x_shape_.rank() == 4, "conv2d: backward_data called before forward");
        checks::f32("conv2d", "weight", w.dtype());
        checks::f32("conv2d", "dy", dy.dtype());
        checks::same_shape("conv2d backward_data", "dy", dy.shape(), "forward output",
                           checks::conv2d(p_, x_shape_, w.shape(), nullptr));
        auto& e = entry(ctx, x_shape_, w.shape());
        dx.ensure(ctx, x_shape_);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnConvolutionBackwardData(ctx.dnn(), &one, e.w, w.f32(), e.y, dy.f32(), e.data_conv,
                                                      e.data_algo, ctx.workspace(e.data_bytes), e.data_bytes, &zero,
                                                      e.x, dx.f32()));
    }

    void backward_weights(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        const shape ws{dy.shape().rank() == 4 ? dy.shape()[1] : 0, x.shape().rank() == 4 ? x.shape()[1] : 0,
                       p_.kernel_h, p_.kernel_w};
        checks::same_shape("conv2d backward_weights", "dy", dy.shape(), "forward output",
                           checks::conv2d(p_, x.shape(), ws, nullptr));
        checks::f32("conv2d", "input", x.dtype());
        checks::f32("conv2d", "dy", dy.dtype());
        auto& e = entry(ctx, x.shape(), ws);
        dw.ensure(ctx, ws);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnConvolutionBackwardFilter(ctx.dnn(), &one, e.x, x.f32(), e.y, dy.f32(), e.filter_conv,
                                                        e.filter_algo, ctx.workspace(e.filter_bytes), e.filter_bytes,
                                                        &zero, e.w, dw.f32()));
        if (dbias) {
            dbias->ensure(ctx, shape{ws[0]});
            MICLE_CUDA_CHECK(cudnnConvolutionBackwardBias(ctx.dnn(), &one, e.y, dy.f32(), &zero, e.b, dbias->f32()));
        }
    }

private:
    struct entry_t {
        entry_t(context_t& ctx, const conv2d_params& p, const shape& xs, const shape& wsh)
            : x(xs), y(checks::conv2d(p, xs, wsh, nullptr)), b(shape{1, wsh[0], 1, 1}), w(wsh),
              fwd_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, ctx.options().allow_tf32),
              data_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, ctx.options().allow_tf32),
              filter_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, ctx.options().allow_tf32) {
            const auto& o = ctx.options();
            int max = 0, n = 0;
            {
                MICLE_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(ctx.dnn(), &max));
                std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<std::size_t>(max));
                MICLE_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.dnn(), x, w, fwd_conv, y, max, &n, perfs.data()));
                const auto& c = cudnn_detail::choose_algorithm(perfs, n, o, "forward");
                fwd_algo = c.algo;
                MICLE_CUDA_CHECK(cudnnSetConvolutionMathType(fwd_conv, c.mathType));
                MICLE_CUDA_CHECK(cudnnGetConvolutionForwardWorkspaceSize(ctx.dnn(), x, w, fwd_conv, y, fwd_algo, &fwd_bytes));
            }
            {
                MICLE_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(ctx.dnn(), &max));
                std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<std::size_t>(max));
                MICLE_CUDA_CHECK(
                    cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.dnn(), w, y, data_conv, x, max, &n, perfs.data()));
                const auto& c = cudnn_detail::choose_algorithm(perfs, n, o, "backward-data");
                data_algo = c.algo;
                MICLE_CUDA_CHECK(cudnnSetConvolutionMathType(data_conv, c.mathType));
                MICLE_CUDA_CHECK(
                    cudnnGetConvolutionBackwardDataWorkspaceSize(ctx.dnn(), w, y, data_conv, x, data_algo, &data_bytes));
            }
            {
                MICLE_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(ctx.dnn(), &max));
                std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<std::size_t>(max));
                MICLE_CUDA_CHECK(
                    cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx.dnn(), x, y, filter_conv, w, max, &n, perfs.data()));
                const auto& c = cudnn_detail::choose_algorithm(perfs, n, o, "backward-filter");
                filter_algo = c.algo;
                MICLE_CUDA_CHECK(cudnnSetConvolutionMathType(filter_conv, c.mathType));
                MICLE_CUDA_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx.dnn(), x, y, filter_conv, w,
                                                                                filter_algo, &filter_bytes));
            }
        }
        cudnn_detail::tensor_desc x, y, b;
        cudnn_detail::filter_desc w;
        cudnn_detail::conv_desc fwd_conv, data_conv, filter_conv;
        cudnnConvolutionFwdAlgo_t fwd_algo{};
        cudnnConvolutionBwdDataAlgo_t data_algo{};
        cudnnConvolutionBwdFilterAlgo_t filter_algo{};
        std::size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;
    };

    entry_t& entry(context_t& ctx, const shape& xs, const shape& ws) {
        return cache_.get(std::pair{xs, ws}, [&] { return std::make_unique<entry_t>(ctx, p_, xs, ws); }).operator*();
    }

    conv2d_params p_;
    shape x_shape_;
    micle::detail::shape_cache<std::pair<shape, shape>, std::unique_ptr<entry_t>> cache_;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
