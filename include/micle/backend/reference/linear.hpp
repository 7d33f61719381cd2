#pragma once
#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class linear<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    void forward(context_t&, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("linear", "input", x.dtype());
        checks::f32("linear", "weight", w.dtype());
        const shape ys = checks::linear(x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        x_shape_ = x.shape();
        y.ensure(ys);
        const auto N = ys[0], O = ys[1], K = x.shape()[1];
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t o = 0; o < O; ++o) {
                double acc = bias ? bias->data()[o] : 0.0;
                for (std::int64_t k = 0; k < K; ++k) acc += double(x.data()[n * K + k]) * w.data()[o * K + k];
                y.data()[n * O + o] = static_cast<float>(acc);
            }
    }
    void backward_data(context_t&, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        check(x_shape_.rank() == 2, "linear: backward_data called before forward");
        checks::same_shape("linear backward_data", "dy", dy.shape(), "forward output",
                           checks::linear(x_shape_, w.shape(), nullptr));
        const auto N = x_shape_[0], K = x_shape_[1], O = w.shape()[0];
        dx.ensure(x_shape_);
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t k = 0; k < K; ++k) {
                double acc = 0;
                for (std::int64_t o = 0; o < O; ++o) acc += double(dy.data()[n * O + o]) * w.data()[o * K + k];
                dx.data()[n * K + k] = static_cast<float>(acc);
            }
    }
    void backward_weights(context_t&, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        expect_rank(dy.shape(), 2, "linear backward_weights", "dy");
        const shape ws{dy.shape()[1], x.shape().rank() == 2 ? x.shape()[1] : 0};
        checks::same_shape("linear backward_weights", "dy", dy.shape(), "forward output",
                           checks::linear(x.shape(), ws, nullptr));
        const auto N = x.shape()[0], K = x.shape()[1], O = ws[0];
        dw.ensure(ws);
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t k = 0; k < K; ++k) {
                double acc = 0;
                for (std::int64_t n = 0; n < N; ++n) acc += double(dy.data()[n * O + o]) * x.data()[n * K + k];
                dw.data()[o * K + k] = static_cast<float>(acc);
            }
        if (dbias) {
            dbias->ensure(shape{O});
            for (std::int64_t o = 0; o < O; ++o) {
                double acc = 0;
                for (std::int64_t n = 0; n < N; ++n) acc += dy.data()[n * O + o];
                dbias->data()[o] = static_cast<float>(acc);
            }
        }
    }

private:
    shape x_shape_;
};

}  // namespace micle::ops
