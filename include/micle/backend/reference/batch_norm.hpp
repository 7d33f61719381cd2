#pragma once
#include <cmath>
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class batch_norm<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    explicit batch_norm(batch_norm_params p = {}) : p_(p) {}
    const batch_norm_params& params() const noexcept { return p_; }

    void forward_training(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                          tensor_t& running_mean, tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, true);
        const auto [N, C, S] = dims(x.shape());
        const double M = double(N) * double(S);
        mean_.assign(static_cast<std::size_t>(C), 0.0);
        invstd_.assign(static_cast<std::size_t>(C), 0.0);
        for (std::int64_t c = 0; c < C; ++c) {
            double s = 0;
            for (std::int64_t n = 0; n < N; ++n)
                for (std::int64_t k = 0; k < S; ++k) s += x.data()[(n * C + c) * S + k];
            const double mean = s / M;
            double v = 0;
            for (std::int64_t n = 0; n < N; ++n)
                for (std::int64_t k = 0; k < S; ++k) {
                    const double d = x.data()[(n * C + c) * S + k] - mean;
                    v += d * d;
                }
            const double var = v / M;  // biased: used for normalisation
            mean_[static_cast<std::size_t>(c)] = mean;
            invstd_[static_cast<std::size_t>(c)] = 1.0 / std::sqrt(var + p_.eps);
            const double m = p_.momentum;
            running_mean.data()[c] = static_cast<float>((1 - m) * running_mean.data()[c] + m * mean);
            running_var.data()[c] = static_cast<float>((1 - m) * running_var.data()[c] + m * var * M / (M - 1));
        }
        apply(x, gamma, beta, y);
        if (p_.fuse_relu) saved_y_ = y.clone(ctx);
        x_shape_ = x.shape();
    }

    void forward_inference(context_t&, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                           const tensor_t& running_mean, const tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, false);
        const auto C = x.shape()[1];
        mean_.resize(static_cast<std::size_t>(C));
        invstd_.resize(static_cast<std::size_t>(C));
        for (std::int64_t c = 0; c < C; ++c) {
            mean_[static_cast<std::size_t>(c)] = running_mean.data()[c];
            invstd_[static_cast<std::size_t>(c)] = 1.0 / std::sqrt(double(running_var.data()[c]) + p_.eps);
        }
        apply(x, gamma, beta, y);
        x_shape_ = shape{};  // inference leaves nothing for backward
    }

    void backward(context_t&, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma, const tensor_t&,
                  tensor_t& dx, tensor_t& dgamma, tensor_t& dbeta) {
        check(x_shape_.rank() > 0 && x_shape_ == x.shape(),
              "batch_norm: backward needs a forward_training on the same input first (input ", x.shape(), ")");
        checks::same_shape("batch_norm backward", "dy", dy.shape(), "input", x.shape());
        const auto [N, C, S] = dims(x.shape());
        const double M = double(N) * double(S);
        dx.ensure(x.shape());
        dgamma.ensure(shape{C});
        dbeta.ensure(shape{C});
        for (std::int64_t c = 0; c < C; ++c) {
            const double mean = mean_[static_cast<std::size_t>(c)], is = invstd_[static_cast<std::size_t>(c)];
            double sdy = 0, sdyx = 0;
            for (std::int64_t n = 0; n < N; ++n)
                for (std::int64_t k = 0; k < S; ++k) {
                    const auto i = (n * C + c) * S + k;
                    const double g = grad_in(dy, i);
                    sdy += g;
                    sdyx += g * (x.data()[i] - mean) * is;
                }
            dbeta.data()[c] = static_cast<float>(sdy);
            dgamma.data()[c] = static_cast<float>(sdyx);
            const double scale = double(gamma.data()[c]) * is / M;
            for (std::int64_t n = 0; n < N; ++n)
                for (std::int64_t k = 0; k < S; ++k) {
                    const auto i = (n * C + c) * S + k;
                    const double xhat = (x.data()[i] - mean) * is;
                    dx.data()[i] = static_cast<float>(scale * (M * grad_in(dy, i) - sdy - xhat * sdyx));
                }
        }
    }

private:
    struct nsc {
        std::int64_t n, c, s;
    };
    static nsc dims(const shape& x) { return {x[0], x[1], x.numel() / (x[0] * x[1])}; }

    void validate(const tensor_t& x, const tensor_t& g, const tensor_t& b, const tensor_t& rm, const tensor_t& rv,
                  bool training) const {
        checks::f32("batch_norm", "input", x.dtype());
        checks::batch_norm(x.shape(), training, {&g.shape(), &b.shape(), &rm.shape(), &rv.shape()});
    }

    void apply(const tensor_t& x, const tensor_t& gamma, const tensor_t& beta, tensor_t& y) const {
        const auto [N, C, S] = dims(x.shape());
        y.ensure(x.shape());
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t c = 0; c < C; ++c) {
                const double a = gamma.data()[c] * invstd_[static_cast<std::size_t>(c)];
                const double m = mean_[static_cast<std::size_t>(c)];
                for (std::int64_t k = 0; k < S; ++k) {
                    const auto i = (n * C + c) * S + k;
                    double v = a * (x.data()[i] - m) + beta.data()[c];
                    if (p_.fuse_relu && v < 0) v = 0;
                    y.data()[i] = static_cast<float>(v);
                }
            }
    }

    double grad_in(const tensor_t& dy, std::int64_t i) const {
        if (p_.fuse_relu && saved_y_.data()[i] <= 0) return 0.0;
        return dy.data()[i];
    }

    batch_norm_params p_;
    std::vector<double> mean_, invstd_;
    tensor_t saved_y_;
    shape x_shape_;
};

}  // namespace micle::ops
