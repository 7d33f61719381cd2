#pragma once
// Batch normalisation on cuDNN. Training uses cudnnBatchNormalizationForwardTrainingEx in
// the persistent NHWC mode, with the ReLU fused into the same kernel when the op asks for
// it (CUDNN_BATCHNORM_OPS_BN_ACTIVATION); cuDNN keeps PyTorch's convention of a biased
// variance for normalising and an unbiased one in the running variance. [N, C] inputs are
// run as [N, C, 1, 1].
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
        auto& e = entry(ctx, x.shape());
        y.ensure(ctx, x.shape());
        const auto C = x.shape()[1];
        save_mean_.ensure(ctx, shape{C});
        save_invstd_.ensure(ctx, shape{C});
        reserve_.ensure(ctx, shape{static_cast<std::int64_t>((e.reserve_bytes + 3) / 4) + 1});
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnBatchNormalizationForwardTrainingEx(
            ctx.dnn(), e.train_mode, ops(), &one, &zero, e.x, x.f32(), nullptr, nullptr, e.x, y.f32(), e.bn,
            gamma.f32(), beta.f32(), double(p_.momentum), running_mean.f32(), running_var.f32(), double(p_.eps),
            save_mean_.f32(), save_invstd_.f32(), e.act(),
            ctx.workspace(e.fwd_bytes), e.fwd_bytes, reserve_.raw(), e.reserve_bytes));
        if (p_.fuse_relu) {  // the backward of the fused ReLU reads the output
            saved_y_.ensure(ctx, x.shape());
            saved_y_.copy_from(ctx, y);
        }
        x_shape_ = x.shape();
    }

    void forward_inference(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                           const tensor_t& running_mean, const tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, false);
        auto& e = entry(ctx, x.shape());
        y.ensure(ctx, x.shape());
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnBatchNormalizationForwardInference(ctx.dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, e.x,
                                                                 x.f32(), e.x, y.f32(), e.bn, gamma.f32(), beta.f32(),
                                                                 running_mean.f32(), running_var.f32(), double(p_.eps)));
        if (p_.fuse_relu) cudnn_detail::kernels::relu_forward(ctx.stream(), y.f32(), y.f32(), y.numel());
        x_shape_ = shape{};  // inference leaves nothing for backward
    }

    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma, const tensor_t& beta,
                  tensor_t& dx, tensor_t& dgamma, tensor_t& dbeta) {
        check(x_shape_.rank() > 0 && x_shape_ == x.shape(),
              "batch_norm: backward needs a forward_training on the same input first (input ", x.shape(), ")");
        checks::same_shape("batch_norm backward", "dy", dy.shape(), "input", x.shape());
        checks::f32("batch_norm", "dy", dy.dtype());
        auto& e = entry(ctx, x.shape());
        const auto C = x.shape()[1];
        dx.ensure(ctx, x.shape());
        dgamma.ensure(ctx, shape{C});
        dbeta.ensure(ctx, shape{C});
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnBatchNormalizationBackwardEx(
            ctx.dnn(), e.train_mode, ops(), &one, &zero, &one, &zero, e.x, x.f32(), e.x,
            p_.fuse_relu ? saved_y_.f32() : nullptr, e.x, dy.f32(), nullptr, nullptr, e.x, dx.f32(), e.bn, gamma.f32(),
            beta.f32(), dgamma.f32(), dbeta.f32(), double(p_.eps), save_mean_.f32(), save_invstd_.f32(),
            e.act(), ctx.workspace(e.bwd_bytes),
            e.bwd_bytes, reserve_.raw(), e.reserve_bytes));
    }

private:
    struct entry_t {
        entry_t(context_t& ctx, const shape& xs, bool fuse_relu)
            : x(xs), fused(fuse_relu),
              train_mode(xs.rank() == 4 ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL) {
            const auto ops = fused ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN;
            const cudnnActivationDescriptor_t act = this->act();
            MICLE_CUDA_CHECK(cudnnDeriveBNTensorDescriptor(bn_raw(), x, CUDNN_BATCHNORM_SPATIAL));
            MICLE_CUDA_CHECK(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(ctx.dnn(), train_mode, ops, x,
                                                                                      nullptr, x, bn, act, &fwd_bytes));
            MICLE_CUDA_CHECK(cudnnGetBatchNormalizationBackwardExWorkspaceSize(ctx.dnn(), train_mode, ops, x, x, x,
                                                                               nullptr, x, bn, act, &bwd_bytes));
            MICLE_CUDA_CHECK(
                cudnnGetBatchNormalizationTrainingExReserveSpaceSize(ctx.dnn(), train_mode, ops, act, x, &reserve_bytes));
        }
        cudnnTensorDescriptor_t bn_raw() const { return bn; }
        /// The fused ReLU, or none.
        cudnnActivationDescriptor_t act() const { return fused ? static_cast<cudnnActivationDescriptor_t>(relu) : nullptr; }
        cudnn_detail::tensor_desc x, bn;
        cudnn_detail::relu_desc relu;
        bool fused;
        cudnnBatchNormMode_t train_mode;
        std::size_t fwd_bytes = 0, bwd_bytes = 0, reserve_bytes = 0;
    };

    cudnnBatchNormOps_t ops() const { return p_.fuse_relu ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN; }

    entry_t& entry(context_t& ctx, const shape& xs) {
        return *cache_.get(xs, [&] { return std::make_unique<entry_t>(ctx, xs, p_.fuse_relu); });
    }

    void validate(const tensor_t& x, const tensor_t& g, const tensor_t& b, const tensor_t& rm, const tensor_t& rv,
                  bool training) const {
        checks::f32("batch_norm", "input", x.dtype());
        checks::batch_norm(x.shape(), training, {&g.shape(), &b.shape(), &rm.shape(), &rv.shape()});
    }

    batch_norm_params p_;
    tensor_t save_mean_, save_invstd_, reserve_, saved_y_;
    shape x_shape_;
    micle::detail::shape_cache<shape, std::unique_ptr<entry_t>> cache_;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
