#pragma once
// Convolution on cuDNN: NHWC activations, KRSC weights, fp32 accumulation (TF32 tensor
// cores when the context allows them). Descriptors and the three algorithm choices are
// made once per (input, weight) shape and cached; the context's workspace is reused.
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "micle/backend/cudnn/descriptors.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/shape_cache.hpp"

MICLE_CUDNN_LEGACY_BEGIN

namespace micle::cudnn_detail {

/// The first algorithm of cuDNN's heuristic ranking that succeeded, fits the workspace
/// limit, is deterministic when asked, and uses tensor cores (TF32 for fp32 data) only
/// when allowed.
template <class Perf>
const Perf& choose_algorithm(const std::vector<Perf>& perfs, int count, const cudnn_options& o, bool tensor_cores,
                             const char* what) {
    for (int i = 0; i < count; ++i) {
        const Perf& p = perfs[static_cast<std::size_t>(i)];
        if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.workspace_limit) continue;
        if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
        if (!tensor_cores && p.mathType != CUDNN_FMA_MATH) continue;
        return p;
    }
    throw backend_error(detail::cat("conv2d: cuDNN offers no ", what, " algorithm for this shape within a ",
                                    o.workspace_limit, "-byte workspace", o.deterministic ? " that is deterministic" : "",
                                    tensor_cores ? "" : " without TF32"));
}

/// One pass's algorithm: cuDNN's ranking (its heuristics, or with find_algorithms each
/// algorithm run once on scratch buffers cuDNN allocates, fastest first), the choice in it
/// (choose_algorithm), that algorithm's math type set on `conv`, and its workspace size.
/// The three passes' cuDNN functions share one signature over their descriptors
/// (a, b, conv, c): forward (x, w, conv, y), backward data (w, dy, conv, dx), backward
/// filter (x, dy, conv, dw).
template <class A, class B, class C, class Perf, class Algo>
void pick_algorithm(cudnnHandle_t h, const cudnn_options& o, bool tensor_cores, const char* what,
                    cudnnStatus_t (*max_count)(cudnnHandle_t, int*),
                    cudnnStatus_t (*find)(cudnnHandle_t, A, B, cudnnConvolutionDescriptor_t, C, int, int*, Perf*),
                    cudnnStatus_t (*heuristic)(cudnnHandle_t, A, B, cudnnConvolutionDescriptor_t, C, int, int*, Perf*),
                    cudnnStatus_t (*workspace)(cudnnHandle_t, A, B, cudnnConvolutionDescriptor_t, C, Algo, std::size_t*),
                    std::type_identity_t<A> a, std::type_identity_t<B> b, cudnnConvolutionDescriptor_t conv,
                    std::type_identity_t<C> c, Algo& algo, std::size_t& bytes) {
    int max = 0, n = 0;
    MICLE_CUDA_CHECK(max_count(h, &max));
    std::vector<Perf> perfs(static_cast<std::size_t>(max));
    const auto rank = o.find_algorithms ? find : heuristic;
    MICLE_CUDA_CHECK(rank(h, a, b, conv, c, max, &n, perfs.data()));
    const Perf& chosen = choose_algorithm(perfs, n, o, tensor_cores, what);
    algo = chosen.algo;
    MICLE_CUDA_CHECK(cudnnSetConvolutionMathType(conv, chosen.mathType));
    MICLE_CUDA_CHECK(workspace(h, a, b, conv, c, algo, &bytes));
}

/// The math type a convolution descriptor asks for, as PyTorch sets it: tensor ops for
/// bf16 data (with CUDNN_DEFAULT_MATH cuDNN's heuristics rank kernels without tensor cores
/// first, 40-85x slower on an H200), the default (TF32 allowed) for fp32 when TF32 is,
/// FMA only for strict fp32.
inline cudnnMathType_t conv_math_type(dtype t, bool allow_tf32) {
    return t == dtype::bf16 ? CUDNN_TENSOR_OP_MATH : allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

}  // namespace micle::cudnn_detail

namespace micle::ops {

/// In mixed precision (cudnn_options::bf16, or a bf16 input) the convolution reads and
/// writes bf16 activations and casts the fp32 weights to a bf16 copy per call; cuDNN
/// accumulates in fp32, and the weight gradient is cast back to fp32.
template <>
class conv2d<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit conv2d(conv2d_params p) : p_(p) {}
    const conv2d_params& params() const noexcept { return p_; }

    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("conv2d", "weight", w.dtype());
        if (bias) checks::f32("conv2d", "bias", bias->dtype());
        const shape ys = checks::conv2d(p_, x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        x_shape_ = x.shape();
        type_ = compute_type(ctx, x);
        auto& e = entry(ctx, x.shape(), w.shape(), type_);
        const void* xp = as_type(ctx, x, x16_);
        const void* wp = as_type(ctx, w, w16_);
        y.ensure(ctx, ys, type_);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnConvolutionForward(ctx.dnn(), &one, e.x, xp, e.w, wp, e.fwd_conv, e.fwd_algo,
                                                 ctx.workspace(e.fwd_bytes), e.fwd_bytes, &zero, e.y, y.raw()));
        if (bias && type_ == dtype::f32)
            MICLE_CUDA_CHECK(cudnnAddTensor(ctx.dnn(), &one, e.b, bias->f32(), &one, e.y, y.f32()));
        else if (bias)
            cudnn_detail::kernels::bias_rows(ctx.stream(), y.data<__nv_bfloat16>(), bias->f32(), ys[0] * ys[2] * ys[3],
                                             ys[1]);
    }

    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        check(x_shape_.rank() == 4, "conv2d: backward_data called before forward");
        checks::f32("conv2d", "weight", w.dtype());
        checks::same_shape("conv2d backward_data", "dy", dy.shape(), "forward output",
                           checks::conv2d(p_, x_shape_, w.shape(), nullptr));
        auto& e = entry(ctx, x_shape_, w.shape(), type_);
        const void* dyp = as_type(ctx, dy, dy16_);
        const void* wp = as_type(ctx, w, w16_);
        dx.ensure(ctx, x_shape_, type_);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnConvolutionBackwardData(ctx.dnn(), &one, e.w, wp, e.y, dyp, e.data_conv, e.data_algo,
                                                      ctx.workspace(e.data_bytes), e.data_bytes, &zero, e.x, dx.raw()));
    }

    void backward_weights(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        const shape ws{dy.shape().rank() == 4 ? dy.shape()[1] : 0, x.shape().rank() == 4 ? x.shape()[1] : 0,
                       p_.kernel_h, p_.kernel_w};
        checks::same_shape("conv2d backward_weights", "dy", dy.shape(), "forward output",
                           checks::conv2d(p_, x.shape(), ws, nullptr));
        const dtype t = compute_type(ctx, x);
        auto& e = entry(ctx, x.shape(), ws, t);
        const void* xp = as_type(ctx, x, x16_, t);
        const void* dyp = as_type(ctx, dy, dy16_, t);
        dw.ensure(ctx, ws);
        const float one = 1.0f, zero = 0.0f;
        void* dwp = dw.raw();
        if (t == dtype::bf16) {
            dw16_.ensure(ctx, ws, dtype::bf16);
            dwp = dw16_.raw();
        }
        MICLE_CUDA_CHECK(cudnnConvolutionBackwardFilter(ctx.dnn(), &one, e.x, xp, e.y, dyp, e.filter_conv, e.filter_algo,
                                                        ctx.workspace(e.filter_bytes), e.filter_bytes, &zero, e.w, dwp));
        if (t == dtype::bf16)
            cudnn_detail::kernels::convert(ctx.stream(), dw16_.data<__nv_bfloat16>(), dw.f32(), dw.numel());
        if (dbias) {
            dbias->ensure(ctx, shape{ws[0]});
            const auto& ds = dy.shape();
            if (t == dtype::f32)
                MICLE_CUDA_CHECK(cudnnConvolutionBackwardBias(ctx.dnn(), &one, e.y, dyp, &zero, e.b, dbias->f32()));
            else
                cudnn_detail::kernels::column_sums(ctx.stream(), static_cast<const __nv_bfloat16*>(dyp), dbias->f32(),
                                                   ds[0] * ds[2] * ds[3], ds[1]);
        }
    }

private:
    struct entry_t {
        entry_t(context_t& ctx, const conv2d_params& p, const shape& xs, const shape& wsh, dtype t)
            : x(xs, cudnn_detail::data_type(t)), y(checks::conv2d(p, xs, wsh, nullptr), cudnn_detail::data_type(t)),
              b(shape{1, wsh[0], 1, 1}), w(wsh, cudnn_detail::data_type(t)),
              fwd_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, math_type(ctx, t)),
              data_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, math_type(ctx, t)),
              filter_conv(p.pad_h, p.pad_w, p.stride_h, p.stride_w, math_type(ctx, t)) {
            const auto& o = ctx.options();
            const bool tc = tensor_cores(ctx, t);
            const auto h = ctx.dnn();
            cudnn_detail::pick_algorithm(h, o, tc, "forward", cudnnGetConvolutionForwardAlgorithmMaxCount,
                                         cudnnFindConvolutionForwardAlgorithm, cudnnGetConvolutionForwardAlgorithm_v7,
                                         cudnnGetConvolutionForwardWorkspaceSize, x, w, fwd_conv, y, fwd_algo, fwd_bytes);
            cudnn_detail::pick_algorithm(h, o, tc, "backward-data", cudnnGetConvolutionBackwardDataAlgorithmMaxCount,
                                         cudnnFindConvolutionBackwardDataAlgorithm,
                                         cudnnGetConvolutionBackwardDataAlgorithm_v7,
                                         cudnnGetConvolutionBackwardDataWorkspaceSize, w, y, data_conv, x, data_algo,
                                         data_bytes);
            cudnn_detail::pick_algorithm(h, o, tc, "backward-filter", cudnnGetConvolutionBackwardFilterAlgorithmMaxCount,
                                         cudnnFindConvolutionBackwardFilterAlgorithm,
                                         cudnnGetConvolutionBackwardFilterAlgorithm_v7,
                                         cudnnGetConvolutionBackwardFilterWorkspaceSize, x, y, filter_conv, w, filter_algo,
                                         filter_bytes);
        }
        /// Tensor cores allowed: always for bf16 data, for fp32 when TF32 is.
        static bool tensor_cores(context_t& ctx, dtype t) { return t == dtype::bf16 || ctx.options().allow_tf32; }
        static cudnnMathType_t math_type(context_t& ctx, dtype t) {
            return cudnn_detail::conv_math_type(t, ctx.options().allow_tf32);
        }

        cudnn_detail::tensor_desc x, y, b;
        cudnn_detail::filter_desc w;
        cudnn_detail::conv_desc fwd_conv, data_conv, filter_conv;
        cudnnConvolutionFwdAlgo_t fwd_algo{};
        cudnnConvolutionBwdDataAlgo_t data_algo{};
        cudnnConvolutionBwdFilterAlgo_t filter_algo{};
        std::size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;
    };

    static dtype compute_type(const context_t& ctx, const tensor_t& x) {
        return ctx.options().bf16 || x.dtype() == dtype::bf16 ? dtype::bf16 : dtype::f32;
    }
    /// `t`'s storage when it already has type `want` (default: this op's compute type),
    /// else a converted copy in `scratch`.
    const void* as_type(context_t& ctx, const tensor_t& t, tensor_t& scratch) { return as_type(ctx, t, scratch, type_); }
    static const void* as_type(context_t& ctx, const tensor_t& t, tensor_t& scratch, dtype want) {
        if (t.dtype() == want) return t.raw();
        scratch.ensure(ctx, t.shape(), want);
        if (want == dtype::bf16)
            cudnn_detail::kernels::convert(ctx.stream(), t.data<float>(), scratch.data<__nv_bfloat16>(), t.numel());
        else
            cudnn_detail::kernels::convert(ctx.stream(), t.data<__nv_bfloat16>(), scratch.data<float>(), t.numel());
        return scratch.raw();
    }

    entry_t& entry(context_t& ctx, const shape& xs, const shape& ws, dtype t) {
        return *cache_.get(std::tuple{xs, ws, t}, [&] { return std::make_unique<entry_t>(ctx, p_, xs, ws, t); });
    }

    conv2d_params p_;
    shape x_shape_;
    dtype type_ = dtype::f32;  ///< of the last forward
    tensor_t x16_, w16_, dy16_, dw16_;
    micle::detail::shape_cache<std::tuple<shape, shape, dtype>, std::unique_ptr<entry_t>> cache_;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
