#pragma once
// Fully connected layers on cuBLAS (TF32 tensor cores when the context allows them);
// bias add and bias gradient with the backend's kernels.
#include "micle/backend/cudnn/blas.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class linear<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    /// y [N, O] = x [N, K] w^T (w [O, K]) + b
    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("linear", "input", x.dtype());
        checks::f32("linear", "weight", w.dtype());
        const shape ys = checks::linear(x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        x_shape_ = x.shape();
        y.ensure(ctx, ys);
        const auto N = ys[0], O = ys[1], K = x.shape()[1];
        cudnn_detail::gemm_rows(ctx, false, true, N, O, K, 1.0f, x.f32(), w.f32(), 0.0f, y.f32(), ctx.gemm_compute());
        if (bias) cudnn_detail::kernels::bias_rows(ctx.stream(), y.f32(), bias->f32(), N, O);
    }
    /// dx [N, K] = dy [N, O] w [O, K]
    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        check(x_shape_.rank() == 2, "linear: backward_data called before forward");
        checks::same_shape("linear backward_data", "dy", dy.shape(), "forward output",
                           checks::linear(x_shape_, w.shape(), nullptr));
        checks::f32("linear", "dy", dy.dtype());
        const auto N = x_shape_[0], K = x_shape_[1], O = w.shape()[0];
        dx.ensure(ctx, x_shape_);
        cudnn_detail::gemm_rows(ctx, false, false, N, K, O, 1.0f, dy.f32(), w.f32(), 0.0f, dx.f32(), ctx.gemm_compute());
    }
    /// dw [O, K] = dy^T [O, N] x [N, K];  db [O] = column sums of dy
    void backward_weights(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        expect_rank(dy.shape(), 2, "linear backward_weights", "dy");
        const shape ws{dy.shape()[1], x.shape().rank() == 2 ? x.shape()[1] : 0};
        checks::same_shape("linear backward_weights", "dy", dy.shape(), "forward output",
                           checks::linear(x.shape(), ws, nullptr));
        checks::f32("linear", "input", x.dtype());
        checks::f32("linear", "dy", dy.dtype());
        const auto N = x.shape()[0], K = x.shape()[1], O = ws[0];
        dw.ensure(ctx, ws);
        cudnn_detail::gemm_rows(ctx, true, false, O, K, N, 1.0f, dy.f32(), x.f32(), 0.0f, dw.f32(), ctx.gemm_compute());
        if (dbias) {
            dbias->ensure(ctx, shape{O});
            cudnn_detail::kernels::column_sums(ctx.stream(), dy.f32(), dbias->f32(), N, O);
        }
    }

private:
    shape x_shape_;
};

}  // namespace micle::ops
