#pragma once
// NT-Xent on the oneDNN backend: the [2N, 2N] similarity matrix and the gradient are two
// small GEMMs (2N <= a few thousand, D = 128), done with Eigen on the host memory of
// oneDNN's CPU engine.
#include <Eigen/Core>

#include <limits>
#include <span>

#include "micle/backend/onednn/rows.hpp"

namespace micle::ops {

template <>
class nt_xent<onednn> {
    using matrix = onednn_detail::rows::matrix;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit nt_xent(nt_xent_params p = {}) : p_(p) {}
    const nt_xent_params& params() const noexcept { return p_; }

    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups) {
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature));
    }
    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature, &a));
    }

    void backward(context_t& ctx, tensor_t& dz) {
        check(z_.size() > 0, "nt_xent: backward called before forward");
        const auto M = z_.rows();
        matrix g = p_m_;  // anchors x M
        for (std::int64_t k = 0; k < a_.rows; ++k) g(k, a_.positive(k)) -= 1.0f;
        g *= 1.0f / float(a_.total);
        dz.ensure(ctx, onednn_detail::plain_md(shape{M, z_.cols()}));
        auto out = onednn_detail::rows::map(dz.data(), M, z_.cols());
        if (a_.is_all(M)) {
            out.noalias() = ((g + g.transpose()) * z_) * (1.0f / p_.temperature);
            return;
        }
        // The share's gradient: every row as a negative or positive of an anchor (G^T z_a),
        // and the anchors themselves (G z).
        out.noalias() = (g.transpose() * z_.middleRows(a_.row0, a_.rows)) * (1.0f / p_.temperature);
        out.middleRows(a_.row0, a_.rows).noalias() += (g * z_) * (1.0f / p_.temperature);
    }

private:
    float rows(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        const auto M = z.shape()[0], D = z.shape()[1];
        z_ = onednn_detail::rows::cmap(onednn_detail::rows::plain_rows(ctx, z, z_in_), M, D);
        a_ = a;
        const float inv_t = 1.0f / p_.temperature;
        p_m_.resize(a.rows, M);
        p_m_.noalias() = (z_.middleRows(a.row0, a.rows) * z_.transpose()) * inv_t;
        constexpr float excluded = -std::numeric_limits<float>::infinity();
        for (std::int64_t k = 0; k < a.rows; ++k) p_m_(k, a.row0 + k) = excluded;  // not itself
        if (!groups.empty())
            for (std::int64_t k = 0; k < a.rows; ++k)
                for (std::int64_t j = 0; j < M; ++j)
                    if (j != a.positive(k) && groups[static_cast<std::size_t>(a.row0 + k)] == groups[static_cast<std::size_t>(j)])
                        p_m_(k, j) = excluded;
        double loss = 0;
        for (std::int64_t k = 0; k < a.rows; ++k) {
            auto row = p_m_.row(k);
            const float pos_logit = row(a.positive(k));
            const float mx = row.maxCoeff();
            row = (row.array() - mx).exp();
            const float s = row.sum();
            row /= s;
            loss += double(mx) + std::log(double(s)) - double(pos_logit);
        }
        return static_cast<float>(loss / double(a.total));
    }

    nt_xent_params p_;
    nt_xent_anchors a_;
    matrix z_, p_m_;
    onednn_detail::stage z_in_;
};

}  // namespace micle::ops
