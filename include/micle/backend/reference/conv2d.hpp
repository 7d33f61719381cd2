#pragma once
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Direct convolution by its definition, double accumulation.
template <>
class conv2d<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    explicit conv2d(conv2d_params p) : p_(p) {}
    const conv2d_params& params() const noexcept { return p_; }

    void forward(context_t&, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        const shape ys = checked(x, w, bias ? &bias->shape() : nullptr);
        y.ensure(ys);
        const auto N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
        const auto O = ys[1], OH = ys[2], OW = ys[3];
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t o = 0; o < O; ++o)
                for (std::int64_t i = 0; i < OH; ++i)
                    for (std::int64_t j = 0; j < OW; ++j) {
                        double acc = bias ? bias->data()[o] : 0.0;
                        for (std::int64_t c = 0; c < C; ++c)
                            for (std::int64_t ki = 0; ki < p_.kernel_h; ++ki) {
                                const auto h = i * p_.stride_h - p_.pad_h + ki;
                                if (h < 0 || h >= H) continue;
                                for (std::int64_t kj = 0; kj < p_.kernel_w; ++kj) {
                                    const auto ww = j * p_.stride_w - p_.pad_w + kj;
                                    if (ww < 0 || ww >= W) continue;
                                    acc += double(x.data()[((n * C + c) * H + h) * W + ww]) *
                                           w.data()[((o * C + c) * p_.kernel_h + ki) * p_.kernel_w + kj];
                                }
                            }
                        y.data()[((n * O + o) * OH + i) * OW + j] = static_cast<float>(acc);
                    }
    }

    void backward_data(context_t&, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        check(x_shape_.rank() == 4, "conv2d: backward_data called before forward");
        checks::same_shape("conv2d backward_data", "dy", dy.shape(), "forward output",
                           checked(x_shape_, w, nullptr));
        const auto N = x_shape_[0], C = x_shape_[1], H = x_shape_[2], W = x_shape_[3];
        const auto O = dy.shape()[1], OH = dy.shape()[2], OW = dy.shape()[3];
        std::vector<double> acc(static_cast<std::size_t>(x_shape_.numel()), 0.0);
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t o = 0; o < O; ++o)
                for (std::int64_t i = 0; i < OH; ++i)
                    for (std::int64_t j = 0; j < OW; ++j) {
                        const double g = dy.data()[((n * O + o) * OH + i) * OW + j];
                        for (std::int64_t c = 0; c < C; ++c)
                            for (std::int64_t ki = 0; ki < p_.kernel_h; ++ki) {
                                const auto h = i * p_.stride_h - p_.pad_h + ki;
                                if (h < 0 || h >= H) continue;
                                for (std::int64_t kj = 0; kj < p_.kernel_w; ++kj) {
                                    const auto ww = j * p_.stride_w - p_.pad_w + kj;
                                    if (ww < 0 || ww >= W) continue;
                                    acc[static_cast<std::size_t>(((n * C + c) * H + h) * W + ww)] +=
                                        g * w.data()[((o * C + c) * p_.kernel_h + ki) * p_.kernel_w + kj];
                                }
                            }
                    }
        dx.ensure(x_shape_);
        for (std::size_t k = 0; k < acc.size(); ++k) dx.data()[k] = static_cast<float>(acc[k]);
    }

    void backward_weights(context_t&, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        const shape ws{dy.shape().rank() == 4 ? dy.shape()[1] : 0, x.shape().rank() == 4 ? x.shape()[1] : 0,
                       p_.kernel_h, p_.kernel_w};
        const shape bs{ws[0]};
        checks::same_shape("conv2d backward_weights", "dy", dy.shape(), "forward output",
                           checks::conv2d(p_, x.shape(), ws, nullptr));
        checks::f32("conv2d", "dy", dy.dtype());
        const auto N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
        const auto O = dy.shape()[1], OH = dy.shape()[2], OW = dy.shape()[3];
        std::vector<double> acc(static_cast<std::size_t>(ws.numel()), 0.0), bacc(static_cast<std::size_t>(O), 0.0);
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t o = 0; o < O; ++o)
                for (std::int64_t i = 0; i < OH; ++i)
                    for (std::int64_t j = 0; j < OW; ++j) {
                        const double g = dy.data()[((n * O + o) * OH + i) * OW + j];
                        bacc[static_cast<std::size_t>(o)] += g;
                        for (std::int64_t c = 0; c < C; ++c)
                            for (std::int64_t ki = 0; ki < p_.kernel_h; ++ki) {
                                const auto h = i * p_.stride_h - p_.pad_h + ki;
                                if (h < 0 || h >= H) continue;
                                for (std::int64_t kj = 0; kj < p_.kernel_w; ++kj) {
                                    const auto ww = j * p_.stride_w - p_.pad_w + kj;
                                    if (ww < 0 || ww >= W) continue;
                                    acc[static_cast<std::size_t>(((o * C + c) * p_.kernel_h + ki) * p_.kernel_w + kj)] +=
                                        g * x.data()[((n * C + c) * H + h) * W + ww];
                                }
                            }
                    }
        dw.ensure(ws);
        for (std::size_t k = 0; k < acc.size(); ++k) dw.data()[k] = static_cast<float>(acc[k]);
        if (dbias) {
            dbias->ensure(bs);
            for (std::size_t k = 0; k < bacc.size(); ++k) dbias->data()[k] = static_cast<float>(bacc[k]);
        }
    }

private:
    shape checked(const shape& xs, const tensor_t& w, const shape* b) const {
        checks::f32("conv2d", "weight", w.dtype());
        return checks::conv2d(p_, xs, w.shape(), b);
    }
    shape checked(const tensor_t& x, const tensor_t& w, const shape* b) {
        checks::f32("conv2d", "input", x.dtype());
        x_shape_ = x.shape();
        return checked(x.shape(), w, b);
    }

    conv2d_params p_;
    shape x_shape_;
};

}  // namespace micle::ops
