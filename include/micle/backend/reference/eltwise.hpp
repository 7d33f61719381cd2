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

    void forward(context_t&, const tensor_t& a, const tensor_t& b, tensor_t& y) {
        checks::f32("add", "a", a.dtype());
        checks::f32("add", "b", b.dtype());
        checks::same_shape("add", "a", a.shape(), "b", b.shape());
        check(a.defined() && !a.shape().has_zero(), "add: empty or zero-sized input ", a.shape());
        if (&y != &a && &y != &b) y.ensure(a.shape());
        for (std::int64_t i = 0; i < a.numel(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
    }
};

}  // namespace micle::ops
