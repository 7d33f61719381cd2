#pragma once
// ReLU and the residual add, as the backend's own elementwise kernels.
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class relu<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        checks::f32("relu", "input", x.dtype());
        check(x.defined() && !x.shape().has_zero(), "relu: empty or zero-sized input ", x.shape());
        if (&y != &x) y.ensure(ctx, x.shape());
        cudnn_detail::kernels::relu_forward(ctx.stream(), x.f32(), y.f32(), x.numel());
    }
    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dx) {
        checks::same_shape("relu backward", "input", x.shape(), "dy", dy.shape());
        checks::f32("relu", "dy", dy.dtype());
        if (&dx != &dy) dx.ensure(ctx, x.shape());
        cudnn_detail::kernels::relu_backward(ctx.stream(), x.f32(), dy.f32(), dx.f32(), x.numel());
    }
};

template <>
class add<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    void forward(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) {
        checks::f32("add", "a", a.dtype());
        checks::f32("add", "b", b.dtype());
        checks::same_shape("add", "a", a.shape(), "b", b.shape());
        check(a.defined() && !a.shape().has_zero(), "add: empty or zero-sized input ", a.shape());
        if (&y != &a && &y != &b) y.ensure(ctx, a.shape());
        cudnn_detail::kernels::add(ctx.stream(), a.f32(), b.f32(), y.f32(), a.numel());
    }
    void accumulate(context_t& ctx, tensor_t& acc, const tensor_t& x) {
        checks::same_shape("add accumulate", "acc", acc.shape(), "x", x.shape());
        checks::f32("add", "x", x.dtype());
        cudnn_detail::kernels::accumulate(ctx.stream(), acc.f32(), x.f32(), x.numel());
    }
};

}  // namespace micle::ops
