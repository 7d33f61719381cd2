#pragma once
#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class relu<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    void forward(context_t&, const tensor_t& x, tensor_t& y) {
        checks::f32("relu", "input", x.dtype());
        check(x.defined() && !x.shape().has_zero(), "relu: empty or zero-sized input ", x.shape());
        y.ensure(x.shape());
        for (std::int64_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] > 0 ? x.data()[i] : 0.0f;
    }
    void backward(context_t&, const tensor_t& x, const tensor_t& dy, tensor_t& dx) {
        checks::same_shape("relu backward", "input", x.shape(), "dy", dy.shape());
        dx.ensure(x.shape());
        for (std::int64_t i = 0; i < x.numel(); ++i) dx.data()[i] = x.data()[i] > 0 ? dy.data()[i] : 0.0f;
    }
};

template <>
class add<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    void forward(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, false); }
    void forward_relu(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, true); }

private:
    static void run(context_t&, const tensor_t& a, const tensor_t& b, tensor_t& y, bool relu) {
        const char* op = relu ? "add_relu" : "add";
        checks::f32(op, "a", a.dtype());
        checks::f32(op, "b", b.dtype());
        checks::same_shape(op, "a", a.shape(), "b", b.shape());
        check(a.defined() && !a.shape().has_zero(), op, ": empty or zero-sized input ", a.shape());
        if (&y != &a && &y != &b) y.ensure(a.shape());
        for (std::int64_t i = 0; i < a.numel(); ++i) {
            const float s = a.data()[i] + b.data()[i];
            y.data()[i] = relu ? (s > 0 ? s : 0.0f) : s;
        }
    }
};

}  // namespace micle::ops
