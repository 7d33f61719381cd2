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
        checks::f32("nt_xent", "embeddings", z.dtype());
        checks::nt_xent(z.shape(), groups, p_.temperature);
        const auto M = z.shape()[0], D = z.shape()[1], N = M / 2;
        z_ = z.clone(ctx);
        prob_.assign(static_cast<std::size_t>(M * M), 0.0);
        double loss = 0;
        std::vector<double> logit(static_cast<std::size_t>(M));
        for (std::int64_t i = 0; i < M; ++i) {
            const std::int64_t pos = (i + N) % M;
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
                    prob_[static_cast<std::size_t>(i * M + j)] = std::exp(logit[static_cast<std::size_t>(j)] - lse);
            loss += lse - logit[static_cast<std::size_t>(pos)];
        }
        return static_cast<float>(loss / double(M));
    }

    void backward(context_t&, tensor_t& dz) {
        check(z_.defined(), "nt_xent: backward called before forward");
        const auto M = z_.shape()[0], D = z_.shape()[1], N = M / 2;
        auto g = [&](std::int64_t i, std::int64_t j) {
            return (prob_[static_cast<std::size_t>(i * M + j)] - (j == (i + N) % M ? 1.0 : 0.0)) / double(M);
        };
        dz.ensure(z_.shape());
        for (std::int64_t i = 0; i < M; ++i)
            for (std::int64_t d = 0; d < D; ++d) {
                double acc = 0;
                for (std::int64_t j = 0; j < M; ++j) acc += (g(i, j) + g(j, i)) * z_.data()[j * D + d];
                dz.data()[i * D + d] = static_cast<float>(acc / p_.temperature);
            }
    }

private:
    static bool allowed(std::span<const std::int64_t> groups, std::int64_t i, std::int64_t j, std::int64_t pos) {
        if (j == i) return false;
        if (j == pos || groups.empty()) return true;
        return groups[static_cast<std::size_t>(j)] != groups[static_cast<std::size_t>(i)];
    }

    nt_xent_params p_;
    tensor_t z_;
    std::vector<double> prob_;
};

}  // namespace micle::ops
