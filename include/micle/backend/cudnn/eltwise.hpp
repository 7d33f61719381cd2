#pragma once
// ReLU and the residual add, as the backend's own elementwise kernels, on f32 or (mixed
// precision) bf16 tensors: the output takes the input's type.
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class relu<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        check(x.defined() && !x.shape().has_zero(), "relu: empty or zero-sized input ", x.shape());
        if (&y != &x) y.ensure(ctx, x.shape(), x.dtype());
        cudnn_detail::with_element_type(x.dtype(), [&](auto t) {
            using T = decltype(t);
            cudnn_detail::kernels::relu_forward(ctx.stream(), x.data<T>(), y.data<T>(), x.numel());
        });
    }
    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dx) {
        checks::same_shape("relu backward", "input", x.shape(), "dy", dy.shape());
        checks::same_dtype("relu backward", "dy", dy.dtype(), "the input", x.dtype());
        if (&dx != &dy) dx.ensure(ctx, x.shape(), x.dtype());
        cudnn_detail::with_element_type(x.dtype(), [&](auto t) {
            using T = decltype(t);
            cudnn_detail::kernels::relu_backward(ctx.stream(), x.data<T>(), dy.data<T>(), dx.data<T>(), x.numel());
        });
    }
};

template <>
class add<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    void forward(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, false); }
    void forward_relu(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, true); }

private:
    static void run(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y, bool relu) {
        const char* op = relu ? "add_relu" : "add";
        checks::same_shape(op, "a", a.shape(), "b", b.shape());
        checks::same_dtype(op, "a", a.dtype(), "b", b.dtype());
        check(a.defined() && !a.shape().has_zero(), op, ": empty or zero-sized input ", a.shape());
        if (&y != &a && &y != &b) y.ensure(ctx, a.shape(), a.dtype());
        cudnn_detail::with_element_type(a.dtype(), [&](auto t) {
            using T = decltype(t);
            if (relu)
                cudnn_detail::kernels::add_relu(ctx.stream(), a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
            else
                cudnn_detail::kernels::add(ctx.stream(), a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
        });
    }
};

}  // namespace micle::ops
