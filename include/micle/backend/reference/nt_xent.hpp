#pragma once
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class nt_xent<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    explicit nt_xent(nt_xent_params p = {}) : p_(p) {}
    const nt_xent_params& params() const noexcept { return p_; }

    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups) {
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature));
    }
    float forward(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        return rows(ctx, z, groups, checks::nt_xent_call(z.dtype(), z.shape(), groups, p_.temperature, &a));
    }

    void backward(context_t&, tensor_t& dz) {
        check(z_.defined(), "nt_xent: backward called before forward");
        const auto M = z_.shape()[0], D = z_.shape()[1];
        const auto& a = a_;
        auto anchor = [&](std::int64_t r) { return r >= a.row0 && r < a.row0 + a.rows; };
        // g(i, j) for an anchor row i: (softmax_ij - [j is i's positive]) / total.
        auto g = [&](std::int64_t i, std::int64_t j) {
            const std::int64_t k = i - a.row0;
            return (prob_[static_cast<std::size_t>(k * M + j)] - (j == a.positive(k) ? 1.0 : 0.0)) / double(a.total);
        };
        dz.ensure(z_.shape());
        for (std::int64_t i = 0; i < M; ++i)
            for (std::int64_t d = 0; d < D; ++d) {
                double acc = 0;
                for (std::int64_t j = 0; j < M; ++j)
                    acc += ((anchor(i) ? g(i, j) : 0.0) + (anchor(j) ? g(j, i) : 0.0)) * z_.data()[j * D + d];
                dz.data()[i * D + d] = static_cast<float>(acc / p_.temperature);
            }
    }

private:
    float rows(context_t& ctx, const tensor_t& z, std::span<const std::int64_t> groups, const nt_xent_anchors& a) {
        const auto M = z.shape()[0], D = z.shape()[1];
        z_ = z.clone(ctx);
        a_ = a;
        prob_.assign(static_cast<std::size_t>(a.rows * M), 0.0);
        double loss = 0;
        std::vector<double> logit(static_cast<std::size_t>(M));
        for (std::int64_t k = 0; k < a.rows; ++k) {
            const std::int64_t i = a.row0 + k, pos = a.positive(k);
            double mx = -std::numeric_limits<double>::infinity();
            for (std::int64_t j = 0; j < M; ++j) {
                double dot = 0;
                for (std::int64_t d = 0; d < D; ++d) dot += double(z.data()[i * D + d]) * z.data()[j * D + d];
                logit[static_cast<std::size_t>(j)] = dot / p_.temperature;
                if (allowed(groups, i, j, pos)) mx = std::max(mx, logit[static_cast<std::size_t>(j)]);
            }
            double s = 0;
            for (std::int64_t j = 0; j < M; ++j)
                if (allowed(groups, i, j, pos)) s += std::exp(logit[static_cast<std::size_t>(j)] - mx);
            const double lse = mx + std::log(s);
            for (std::int64_t j = 0; j < M; ++j)
                if (allowed(groups, i, j, pos))
                    prob_[static_cast<std::size_t>(k * M + j)] = std::exp(logit[static_cast<std::size_t>(j)] - lse);
            loss += lse - logit[static_cast<std::size_t>(pos)];
        }
        return static_cast<float>(loss / double(a.total));
    }

    static bool allowed(std::span<const std::int64_t> groups, std::int64_t i, std::int64_t j, std::int64_t pos) {
        if (j == i) return false;
        if (j == pos || groups.empty()) return true;
        return groups[static_cast<std::size_t>(j)] != groups[static_cast<std::size_t>(i)];
    }

    nt_xent_params p_;
    tensor_t z_;
    nt_xent_anchors a_;
    std::vector<double> prob_;  ///< softmax of each anchor row (rows x M)
};

}  // namespace micle::ops
