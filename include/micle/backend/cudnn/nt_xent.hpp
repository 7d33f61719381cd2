#pragma once
// NT-Xent on the GPU: the similarity matrix z z^T on cuBLAS (full fp32: at temperature 0.1
// logits are ten times the cosines, and TF32's 10-bit inputs would show), a masked
// row-softmax kernel that also writes G = (softmax - positive) / 2N, and the gradient
// dz = (G + G^T) z / T as two cuBLAS products.
#include <span>
#include <vector>

#include "micle/backend/cudnn/blas.hpp"
#include "micle/backend/cudnn/loss.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class nt_xent<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit nt_xent(nt_xent_params p = {}) : p_(p) {}
    const nt_xent_params& params() const noexcept { return p_; }

    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups) {
        checks::f32("nt_xent", "embeddings", z.dtype());
        checks::nt_xent(z.shape(), groups, p_.temperature);
        const auto M = z.shape()[0], D = z.shape()[1];
        z_.ensure(ctx, z.shape());
        z_.copy_from(ctx, z);
        sim_.ensure(ctx, shape{M, M});
        g_.ensure(ctx, shape{M, M});
        cudnn_detail::gemm_rows(ctx, false, true, M, M, D, 1.0f, z.f32(), z.f32(), 0.0f, sim_.f32(), CUBLAS_COMPUTE_32F);
        const std::int64_t* dgroups = nullptr;
        if (!groups.empty()) dgroups = groups_.upload(ctx.runtime_ptr(), groups.data(), groups.size());
        row_loss_.ensure(ctx.runtime_ptr(), static_cast<std::size_t>(M));
        cudnn_detail::kernels::nt_xent_rows(ctx.stream(), sim_.f32(), dgroups, g_.f32(), row_loss_.get(), M,
                                            1.0f / p_.temperature);
        return static_cast<float>(cudnn_detail::host_sum(row_loss_, static_cast<std::size_t>(M)) / double(M));
    }

    void backward(context_t& ctx, tensor_t& dz) {
        check(z_.defined(), "nt_xent: backward called before forward");
        const auto M = z_.shape()[0], D = z_.shape()[1];
        dz.ensure(ctx, z_.shape());
        const float inv_t = 1.0f / p_.temperature;
        // dz = G z / T + G^T z / T
        cudnn_detail::gemm_rows(ctx, false, false, M, D, M, inv_t, g_.f32(), z_.f32(), 0.0f, dz.f32(), CUBLAS_COMPUTE_32F);
        cudnn_detail::gemm_rows(ctx, true, false, M, D, M, inv_t, g_.f32(), z_.f32(), 1.0f, dz.f32(), CUBLAS_COMPUTE_32F);
    }

private:
    nt_xent_params p_;
    tensor_t z_, sim_, g_;
    cudnn_detail::device_array<std::int64_t> groups_;
    cudnn_detail::device_array<float> row_loss_;
};

}  // namespace micle::ops
