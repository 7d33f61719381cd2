#pragma once
// L2 normalisation of rows with the backend's kernels (SimCLR's projections before NT-Xent).
#include "micle/backend/cudnn/kernels.cuh"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class l2_normalize<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit l2_normalize(l2_normalize_params p = {}) : p_(p) {}

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        checks::f32("l2_normalize", "input", x.dtype());
        checks::rows("l2_normalize", x.shape());
        const auto N = x.shape()[0], D = x.shape()[1];
        y.ensure(ctx, x.shape());
        y_.ensure(ctx, x.shape());
        norms_.ensure(ctx.runtime_ptr(), static_cast<std::size_t>(N));
        cudnn_detail::kernels::l2n_forward(ctx.stream(), x.f32(), y.f32(), norms_.get(), N, D, p_.eps);
        y_.copy_from(ctx, y);
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(y_.defined(), "l2_normalize: backward called before forward");
        checks::same_shape("l2_normalize backward", "dy", dy.shape(), "forward output", y_.shape());
        checks::f32("l2_normalize", "dy", dy.dtype());
        dx.ensure(ctx, dy.shape());
        cudnn_detail::kernels::l2n_backward(ctx.stream(), y_.f32(), norms_.get(), dy.f32(), dx.f32(), dy.shape()[0],
                                            dy.shape()[1], p_.eps);
    }

private:
    l2_normalize_params p_;
    cudnn_detail::device_array<float> norms_;
    tensor_t y_;
};

}  // namespace micle::ops
