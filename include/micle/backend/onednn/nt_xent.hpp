#pragma once
// NT-Xent on the oneDNN backend: the [2N, 2N] similarity matrix and the gradient are two
// small GEMMs (2N <= a few thousand, D = 128), done with Eigen on the host memory of
// oneDNN's CPU engine.
#include <Eigen/Core>

#include <limits>
#include <span>

#include "micle/backend/onednn/loss.hpp"

namespace micle::ops {

template <>
class nt_xent<onednn> {
    using matrix = onednn_detail_rows::matrix;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit nt_xent(nt_xent_params p = {}) : p_(p) {}
    const nt_xent_params& params() const noexcept { return p_; }

    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups) {
        checks::f32("nt_xent", "embeddings", z.dtype());
        checks::nt_xent(z.shape(), groups, p_.temperature);
        const auto M = z.shape()[0], D = z.shape()[1], N = M / 2;
        z_ = onednn_detail_rows::cmap(onednn_detail_rows::plain_rows(ctx, z, z_in_), M, D);
        const float inv_t = 1.0f / p_.temperature;
        p_m_.resize(M, M);
        p_m_.noalias() = (z_ * z_.transpose()) * inv_t;
        constexpr float excluded = -std::numeric_limits<float>::infinity();
        p_m_.diagonal().setConstant(excluded);
        if (!groups.empty())
            for (std::int64_t i = 0; i < M; ++i)
                for (std::int64_t j = 0; j < M; ++j)
                    if (j != (i + N) % M && groups[static_cast<std::size_t>(i)] == groups[static_cast<std::size_t>(j)])
                        p_m_(i, j) = excluded;
        double loss = 0;
        for (std::int64_t i = 0; i < M; ++i) {
            auto row = p_m_.row(i);
            const float pos_logit = row((i + N) % M);
            const float mx = row.maxCoeff();
            row = (row.array() - mx).exp();
            const float s = row.sum();
            row /= s;
            loss += double(mx) + std::log(double(s)) - double(pos_logit);
        }
        return static_cast<float>(loss / double(M));
    }

    void backward(context_t& ctx, tensor_t& dz) {
        check(z_.size() > 0, "nt_xent: backward called before forward");
        const auto M = z_.rows(), N = M / 2;
        matrix g = p_m_;
        for (std::int64_t i = 0; i < M; ++i) g(i, (i + N) % M) -= 1.0f;
        g *= 1.0f / float(M);
        dz.ensure(ctx, onednn_detail::plain_md(shape{M, z_.cols()}));
        onednn_detail_rows::map(dz.data(), M, z_.cols()).noalias() = ((g + g.transpose()) * z_) * (1.0f / p_.temperature);
    }

private:
    nt_xent_params p_;
    matrix z_, p_m_;
    onednn_detail::stage z_in_;
};

}  // namespace micle::ops
