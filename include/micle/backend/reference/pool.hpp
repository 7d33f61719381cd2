#pragma once
#include <limits>
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class pool2d<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    explicit pool2d(pool2d_params p) : p_(p) {}
    const pool2d_params& params() const noexcept { return p_; }

    void forward(context_t&, const tensor_t& x, tensor_t& y) {
        checks::f32("pool2d", "input", x.dtype());
        const shape ys = checks::pool2d(p_, x.shape());
        x_shape_ = x.shape();
        y.ensure(ys);
        const auto N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
        const auto OH = ys[2], OW = ys[3];
        argmax_.assign(static_cast<std::size_t>(ys.numel()), -1);
        for (std::int64_t nc = 0; nc < N * C; ++nc)
            for (std::int64_t i = 0; i < OH; ++i)
                for (std::int64_t j = 0; j < OW; ++j) {
                    const auto o = (nc * OH + i) * OW + j;
                    double acc = 0;
                    float best = -std::numeric_limits<float>::infinity();
                    std::int64_t count = 0;
                    for (std::int64_t ki = 0; ki < p_.kernel_h; ++ki)
                        for (std::int64_t kj = 0; kj < p_.kernel_w; ++kj) {
                            const auto h = i * p_.stride_h - p_.pad_h + ki, w = j * p_.stride_w - p_.pad_w + kj;
                            if (h < 0 || h >= H || w < 0 || w >= W) continue;
                            const auto idx = (nc * H + h) * W + w;
                            const float v = x.data()[idx];
                            ++count;
                            acc += v;
                            if (v > best || argmax_[static_cast<std::size_t>(o)] < 0) {
                                best = v;
                                argmax_[static_cast<std::size_t>(o)] = idx;
                            }
                        }
                    y.data()[o] = p_.kind == pool_kind::max ? best : static_cast<float>(acc / divisor(count));
                }
    }

    void backward(context_t&, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "pool2d: backward called before forward");
        checks::same_shape("pool2d backward", "dy", dy.shape(), "forward output", checks::pool2d(p_, x_shape_));
        const auto N = x_shape_[0], C = x_shape_[1], H = x_shape_[2], W = x_shape_[3];
        const auto OH = dy.shape()[2], OW = dy.shape()[3];
        std::vector<double> acc(static_cast<std::size_t>(x_shape_.numel()), 0.0);
        for (std::int64_t nc = 0; nc < N * C; ++nc)
            for (std::int64_t i = 0; i < OH; ++i)
                for (std::int64_t j = 0; j < OW; ++j) {
                    const auto o = (nc * OH + i) * OW + j;
                    const double g = dy.data()[o];
                    if (p_.kind == pool_kind::max) {
                        acc[static_cast<std::size_t>(argmax_[static_cast<std::size_t>(o)])] += g;
                        continue;
                    }
                    std::int64_t count = 0;
                    for (int pass = 0; pass < 2; ++pass)
                        for (std::int64_t ki = 0; ki < p_.kernel_h; ++ki)
                            for (std::int64_t kj = 0; kj < p_.kernel_w; ++kj) {
                                const auto h = i * p_.stride_h - p_.pad_h + ki, w = j * p_.stride_w - p_.pad_w + kj;
                                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                                if (pass == 0)
                                    ++count;
                                else
                                    acc[static_cast<std::size_t>((nc * H + h) * W + w)] += g / divisor(count);
                            }
                }
        dx.ensure(x_shape_);
        for (std::size_t k = 0; k < acc.size(); ++k) dx.data()[k] = static_cast<float>(acc[k]);
    }

private:
    double divisor(std::int64_t valid) const {
        return p_.kind == pool_kind::avg_exclude_pad ? double(valid) : double(p_.kernel_h * p_.kernel_w);
    }

    pool2d_params p_;
    shape x_shape_;
    std::vector<std::int64_t> argmax_;
};

template <>
class global_avg_pool<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    void forward(context_t&, const tensor_t& x, tensor_t& y) {
        checks::f32("global_avg_pool", "input", x.dtype());
        expect_rank(x.shape(), 4, "global_avg_pool", "input");
        x_shape_ = x.shape();
        const auto NC = x.shape()[0] * x.shape()[1], S = x.shape()[2] * x.shape()[3];
        y.ensure(shape{x.shape()[0], x.shape()[1]});
        for (std::int64_t i = 0; i < NC; ++i) {
            double s = 0;
            for (std::int64_t k = 0; k < S; ++k) s += x.data()[i * S + k];
            y.data()[i] = static_cast<float>(s / double(S));
        }
    }
    void backward(context_t&, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "global_avg_pool: backward called before forward");
        checks::same_shape("global_avg_pool backward", "dy", dy.shape(), "forward output",
                           shape{x_shape_[0], x_shape_[1]});
        const auto NC = x_shape_[0] * x_shape_[1], S = x_shape_[2] * x_shape_[3];
        dx.ensure(x_shape_);
        for (std::int64_t i = 0; i < NC; ++i)
            for (std::int64_t k = 0; k < S; ++k) dx.data()[i * S + k] = static_cast<float>(dy.data()[i] / double(S));
    }

private:
    shape x_shape_;
};

}  // namespace micle::ops
