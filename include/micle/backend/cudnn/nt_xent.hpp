#pragma once
// NT-Xent on the GPU: the similarity matrix z z^T on cuBLAS (full fp32: at temperature 0.1
// logits are ten times the cosines, and TF32's 10-bit inputs would show), a masked
// row-softmax kernel that also writes G = (softmax - positive) / 2N, and the gradient
// dz = (G + G^T) z / T as two cuBLAS products (for a data-parallel share: G^T z_a + G z on
// the anchor rows).
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
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature));
    }
    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature, &a));
    }

    void backward(context_t& ctx, tensor_t& dz) {
        check(z_.defined(), "nt_xent: backward called before forward");
        const auto M = z_.shape()[0], D = z_.shape()[1];
        dz.ensure(ctx, z_.shape());
        const float inv_t = 1.0f / p_.temperature;
        const float* za = z_.f32() + a_.row0 * D;
        // dz = G^T z_a / T (every row as an anchor's positive or negative), then the anchors'
        // rows += G z / T.
        cudnn_detail::gemm_rows(ctx, true, false, M, D, a_.rows, inv_t, g_.f32(), za, 0.0f, dz.f32(), CUBLAS_COMPUTE_32F);
        cudnn_detail::gemm_rows(ctx, false, false, a_.rows, D, M, inv_t, g_.f32(), z_.f32(), 1.0f, dz.f32() + a_.row0 * D,
                                CUBLAS_COMPUTE_32F);
    }

private:
    float rows(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        const auto M = z.shape()[0], D = z.shape()[1];
        z_.ensure(ctx, z.shape());
        z_.copy_from(ctx, z);
        a_ = a;
        sim_.ensure(ctx, shape{a.rows, M});
        g_.ensure(ctx, shape{a.rows, M});
        cudnn_detail::gemm_rows(ctx, false, true, a.rows, M, D, 1.0f, z.f32() + a.row0 * D, z.f32(), 0.0f, sim_.f32(),
                                CUBLAS_COMPUTE_32F);
        const std::int64_t* dgroups = nullptr;
        if (!groups.empty()) dgroups = groups_.upload(ctx.runtime_ptr(), groups.data(), groups.size());
        row_loss_.ensure(ctx.runtime_ptr(), static_cast<std::size_t>(a.rows));
        cudnn_detail::kernels::nt_xent_rows(ctx.stream(), sim_.f32(), dgroups, g_.f32(), row_loss_.get(), M, a.row0, a.rows,
                                            a.total, 1.0f / p_.temperature);
        return static_cast<float>(cudnn_detail::host_sum(row_loss_, static_cast<std::size_t>(a.rows)) / double(a.total));
    }

    nt_xent_params p_;
    nt_xent_anchors a_;
    tensor_t z_, sim_, g_;
    cudnn_detail::device_array<std::int64_t> groups_;
    cudnn_detail::device_array<float> row_loss_;
};

}  // namespace micle::ops
