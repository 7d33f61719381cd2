#pragma once
// Batch normalisation on cuDNN. Training uses cudnnBatchNormalizationForwardTrainingEx in
// the persistent NHWC mode, with the ReLU fused into the same kernel when the op asks for
// it and cuDNN offers that for the shape (CUDNN_BATCHNORM_OPS_BN_ACTIVATION), else as the
// backend's own kernel. cuDNN keeps PyTorch's convention of a biased variance for
// normalising and an unbiased one in the running variance. [N, C] inputs run as
// [N, C, 1, 1].
#include <memory>

#include "micle/backend/cudnn/descriptors.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/shape_cache.hpp"

MICLE_CUDNN_LEGACY_BEGIN

namespace micle::ops {

template <>
class batch_norm<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit batch_norm(batch_norm_params p = {}) : p_(p) {
        check<value_error>(p.eps >= CUDNN_BN_MIN_EPSILON && p.eps > 0, "batch_norm: eps must be positive, got ", p.eps);
    }
    const batch_norm_params& params() const noexcept { return p_; }

    void forward_training(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                          tensor_t& running_mean, tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, true);
        auto& e = entry(ctx, x.shape(), x.dtype());
        y.ensure(ctx, x.shape(), x.dtype());
        const auto C = x.shape()[1];
        save_mean_.ensure(ctx, shape{C});
        save_invstd_.ensure(ctx, shape{C});
        const auto run = [&] {
            reserve_.ensure(ctx, shape{static_cast<std::int64_t>((e.reserve_bytes + 3) / 4) + 1});
            const float one = 1.0f, zero = 0.0f;
            return cudnnBatchNormalizationForwardTrainingEx(
                ctx.dnn(), e.train_mode, e.ops(), &one, &zero, e.x, x.raw(), nullptr, nullptr, e.x, y.raw(), e.bn,
                gamma.f32(), beta.f32(), double(p_.momentum), running_mean.f32(), running_var.f32(), double(p_.eps),
                save_mean_.f32(), save_invstd_.f32(), e.act(), ctx.workspace(e.fwd_bytes), e.fwd_bytes, reserve_.raw(),
                e.reserve_bytes);
        };
        cudnnStatus_t s = run();
        if (s == CUDNN_STATUS_NOT_SUPPORTED && e.fused) {
            // cuDNN's size queries accepted the fused form, its kernels refuse this shape:
            // batch norm alone from now on (nothing was written), the ReLU as our kernel.
            e.fused = false;
            MICLE_CUDA_CHECK(e.query(ctx));
            s = run();
        }
        cudnn_detail::check_status(s, "cudnnBatchNormalizationForwardTrainingEx", __FILE__, __LINE__);
        if (p_.fuse_relu) {
            if (!e.fused) relu_in_place(ctx, y);
            saved_y_.ensure(ctx, x.shape(), x.dtype());  // the ReLU's backward reads the output
            saved_y_.copy_from(ctx, y);
        }
        x_shape_ = x.shape();
    }

    void forward_inference(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                           const tensor_t& running_mean, const tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, false);
        auto& e = entry(ctx, x.shape(), x.dtype());
        y.ensure(ctx, x.shape(), x.dtype());
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnBatchNormalizationForwardInference(ctx.dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, e.x,
                                                                 x.raw(), e.x, y.raw(), e.bn, gamma.f32(), beta.f32(),
                                                                 running_mean.f32(), running_var.f32(), double(p_.eps)));
        if (p_.fuse_relu) relu_in_place(ctx, y);
        x_shape_ = shape{};  // inference leaves nothing for backward
    }

    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma, const tensor_t& beta,
                  tensor_t& dx, tensor_t& dgamma, tensor_t& dbeta) {
        check(x_shape_.rank() > 0 && x_shape_ == x.shape(),
              "batch_norm: backward needs a forward_training on the same input first (input ", x.shape(), ")");
        checks::same_shape("batch_norm backward", "dy", dy.shape(), "input", x.shape());
        checks::same_dtype("batch_norm backward", "dy", dy.dtype(), "the input", x.dtype());
        auto& e = entry(ctx, x.shape(), x.dtype());
        const auto C = x.shape()[1];
        dx.ensure(ctx, x.shape(), x.dtype());
        dgamma.ensure(ctx, shape{C});
        dbeta.ensure(ctx, shape{C});
        const void* grad = dy.raw();
        if (p_.fuse_relu && !e.fused) {  // the ReLU's backward first, then plain batch norm
            masked_dy_.ensure(ctx, x.shape(), x.dtype());
            cudnn_detail::with_element_type(x.dtype(), [&](auto t) {
                using T = decltype(t);
                cudnn_detail::kernels::relu_backward(ctx.stream(), saved_y_.data<T>(), dy.data<T>(),
                                                     masked_dy_.data<T>(), dy.numel());
            });
            grad = masked_dy_.raw();
        }
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnBatchNormalizationBackwardEx(
            ctx.dnn(), e.train_mode, e.ops(), &one, &zero, &one, &zero, e.x, x.raw(), e.x,
            e.fused ? saved_y_.raw() : nullptr, e.x, grad, nullptr, nullptr, e.x, dx.raw(), e.bn, gamma.f32(),
            beta.f32(), dgamma.f32(), dbeta.f32(), double(p_.eps), save_mean_.f32(), save_invstd_.f32(), e.act(),
            ctx.workspace(e.bwd_bytes), e.bwd_bytes, reserve_.raw(), e.reserve_bytes));
    }

    /// Whether cuDNN runs the ReLU inside its batch-norm kernels for inputs of shape `x`
    /// (false: it runs as a separate kernel; cuDNN fuses only some types and layouts).
    bool relu_fused(context_t& ctx, const shape& x, dtype t = dtype::f32) { return entry(ctx, x, t).fused; }

private:
    /// Per input shape: descriptors, workspace and reserve sizes, and whether cuDNN fuses
    /// the ReLU for this shape (asked once: if its size queries refuse the fused form,
    /// batch norm runs alone and the ReLU in the backend's kernels).
    struct entry_t {
        entry_t(context_t& ctx, const shape& xs, dtype t, bool fuse_relu)
            : x(xs, cudnn_detail::data_type(t)), train_mode(xs.rank() == 4 ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL) {
            MICLE_CUDA_CHECK(cudnnDeriveBNTensorDescriptor(bn_raw(), x, CUDNN_BATCHNORM_SPATIAL));
            // cuDNN fuses the activation only in the persistent mode (rank-4 inputs here).
            fused = fuse_relu && train_mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT && query(ctx) == CUDNN_STATUS_SUCCESS;
            if (!fused) MICLE_CUDA_CHECK(query(ctx));
        }
        cudnnStatus_t query(context_t& ctx) {
            cudnnStatus_t s = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(ctx.dnn(), train_mode, ops(), x,
                                                                                       nullptr, x, bn, act(), &fwd_bytes);
            if (s == CUDNN_STATUS_SUCCESS)
                s = cudnnGetBatchNormalizationBackwardExWorkspaceSize(ctx.dnn(), train_mode, ops(), x, x, x, nullptr, x,
                                                                      bn, act(), &bwd_bytes);
            if (s == CUDNN_STATUS_SUCCESS)
                s = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(ctx.dnn(), train_mode, ops(), act(), x,
                                                                         &reserve_bytes);
            return s;
        }
        cudnnTensorDescriptor_t bn_raw() const { return bn; }
        cudnnBatchNormOps_t ops() const { return fused ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN; }
        cudnnActivationDescriptor_t act() const { return fused ? static_cast<cudnnActivationDescriptor_t>(relu) : nullptr; }

        cudnn_detail::tensor_desc x, bn;
        cudnn_detail::relu_desc relu;
        cudnnBatchNormMode_t train_mode;
        bool fused = true;  // while asking cuDNN whether it can
        std::size_t fwd_bytes = 0, bwd_bytes = 0, reserve_bytes = 0;
    };

    entry_t& entry(context_t& ctx, const shape& xs, dtype t) {
        return *cache_.get(std::pair{xs, t}, [&] { return std::make_unique<entry_t>(ctx, xs, t, p_.fuse_relu); });
    }
    static void relu_in_place(context_t& ctx, tensor_t& y) {
        cudnn_detail::with_element_type(y.dtype(), [&](auto t) {
            using T = decltype(t);
            cudnn_detail::kernels::relu_forward(ctx.stream(), y.data<T>(), y.data<T>(), y.numel());
        });
    }

    void validate(const tensor_t& x, const tensor_t& g, const tensor_t& b, const tensor_t& rm, const tensor_t& rv,
                  bool training) const {
        for (const tensor_t* p : {&g, &b, &rm, &rv}) checks::f32("batch_norm", "per-channel parameter", p->dtype());
        checks::batch_norm(x.shape(), training, {&g.shape(), &b.shape(), &rm.shape(), &rv.shape()});
    }

    batch_norm_params p_;
    tensor_t save_mean_, save_invstd_, reserve_, saved_y_, masked_dy_;
    shape x_shape_;
    micle::detail::shape_cache<std::pair<shape, dtype>, std::unique_ptr<entry_t>> cache_;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
