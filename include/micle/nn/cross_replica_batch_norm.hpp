#pragma once
// Cross-replica (global) batch norm, the paper's setting for large-batch SimCLR: the
// per-channel statistics of the *global* batch. Each rank's count, mean and M2 (sum of
// squared deviations) are gathered and merged in rank order, count-weighted and in double
// (Chan et al.'s pairwise update), so the result does not depend on how the batch is split;
// the running variance is unbiased over the global count, as PyTorch's SyncBatchNorm. The
// backward pass sums dy and dy * x_hat over the ranks; the scale and shift gradients stay
// this rank's share, for the gradient all-reduce to sum with the others.
//
// nn::batch_norm uses this when its learner is distributed with global batch norm. On a
// backend whose op normalises with given statistics (oneDNN; the capability is declared in
// core/concepts.hpp) it runs on the op's primitives and only per-channel values cross to
// the host; elsewhere the activations are staged through host memory. The ranks talk
// through core's communicator interface; dist/ implements it.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/communicator.hpp"
#include "micle/core/concepts.hpp"

namespace micle::nn {

template <class B>
class cross_replica_batch_norm {
public:
    explicit cross_replica_batch_norm(ops::batch_norm_params p = {}) : p_(p), op_(p) {}

    void forward_training(context<B>& ctx, dist::communicator& comm, const tensor<B>& x, const tensor<B>& gamma,
                          const tensor<B>& beta, tensor<B>& running_mean, tensor<B>& running_var, tensor<B>& y) {
        ops::checks::f32("batch_norm", "input", x.dtype());
        // shapes here; "more than one value per channel" holds for the global batch (below):
        // a rank may hold a single image of a short last batch
        ops::checks::batch_norm(x.shape(), false, {&gamma.shape(), &beta.shape(), &running_mean.shape(), &running_var.shape()});
        shape_ = x.shape();
        const std::int64_t N = shape_[0], C = shape_[1], S = x.numel() / (N * C);
        // This rank's count, mean and M2 per channel, then every rank's, merged in rank order.
        std::vector<double> mine(std::size_t(3 * C));
        std::vector<float> xh;
        if constexpr (normalises_with_given_statistics<B>) {
            std::vector<float> mean(static_cast<std::size_t>(C)), var(static_cast<std::size_t>(C));
            op_.local_statistics(ctx, x, mean, var);
            for (std::int64_t c = 0; c < C; ++c) {
                const double cnt = double(N * S);
                mine[std::size_t(3 * c)] = cnt;
                mine[std::size_t(3 * c + 1)] = mean[std::size_t(c)];
                mine[std::size_t(3 * c + 2)] = double(var[std::size_t(c)]) * cnt;
            }
        } else {
            xh = x.to_host(ctx);
            for (std::int64_t c = 0; c < C; ++c) {
                double sum = 0;
                for (std::int64_t n = 0; n < N; ++n)
                    for (std::int64_t s = 0; s < S; ++s) sum += xh[std::size_t((n * C + c) * S + s)];
                const double cnt = double(N * S), mean = sum / cnt;
                double m2 = 0;
                for (std::int64_t n = 0; n < N; ++n)
                    for (std::int64_t s = 0; s < S; ++s) {
                        const double d = xh[std::size_t((n * C + c) * S + s)] - mean;
                        m2 += d * d;
                    }
                mine[std::size_t(3 * c)] = cnt;
                mine[std::size_t(3 * c + 1)] = mean;
                mine[std::size_t(3 * c + 2)] = m2;
            }
        }
        std::vector<double> all(mine.size() * std::size_t(comm.size()));
        comm.all_gather(std::span<const double>(mine), std::span<double>(all));
        mean_.assign(std::size_t(C), 0.0);
        invstd_.assign(std::size_t(C), 0.0);
        count_ = 0;
        std::vector<double> m2(std::size_t(C), 0.0);
        for (std::int64_t c = 0; c < C; ++c) {
            double n_a = 0, mean_a = 0, m2_a = 0;
            for (int r = 0; r < comm.size(); ++r) {
                const double* st = all.data() + std::size_t(r) * mine.size() + std::size_t(3 * c);
                const double n_b = st[0], n_ab = n_a + n_b, delta = st[1] - mean_a;
                mean_a += delta * n_b / n_ab;
                m2_a += st[2] + delta * delta * n_a * n_b / n_ab;
                n_a = n_ab;
            }
            mean_[std::size_t(c)] = mean_a;
            m2[std::size_t(c)] = m2_a;
            invstd_[std::size_t(c)] = 1.0 / std::sqrt(m2_a / n_a + double(p_.eps));
            count_ = n_a;
        }
        check(count_ > 1, "batch_norm: training needs more than one value per channel over the ranks, got input ", shape_,
              " on each of ", comm.size(), " ranks");
        if constexpr (normalises_with_given_statistics<B>) {
            std::vector<float> mean(static_cast<std::size_t>(C)), var(static_cast<std::size_t>(C));
            for (std::int64_t c = 0; c < C; ++c) {
                mean[std::size_t(c)] = float(mean_[std::size_t(c)]);
                var[std::size_t(c)] = float(m2[std::size_t(c)] / count_);
            }
            set(ctx, gmean_, mean);
            set(ctx, gvar_, var);
            op_.forward_with_statistics(ctx, x, gamma, beta, gmean_, gvar_, y);
            x_ = &x;
            beta_ = &beta;
        } else {
            const auto g = gamma.to_host(ctx), b = beta.to_host(ctx);
            xhat_.resize(xh.size());
            std::vector<float> yh(xh.size());
            for (std::int64_t n = 0; n < N; ++n)
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t s = 0; s < S; ++s) {
                        const auto i = std::size_t((n * C + c) * S + s);
                        xhat_[i] = float((xh[i] - mean_[std::size_t(c)]) * invstd_[std::size_t(c)]);
                        const float v = g[std::size_t(c)] * xhat_[i] + b[std::size_t(c)];
                        yh[i] = p_.fuse_relu && v < 0 ? 0.0f : v;
                    }
            if (p_.fuse_relu) {
                relu_mask_.resize(yh.size());
                for (std::size_t i = 0; i < yh.size(); ++i) relu_mask_[i] = yh[i] > 0;
            }
            y = tensor<B>::from_host(ctx, shape_, yh);
        }
        auto rm = running_mean.to_host(ctx), rv = running_var.to_host(ctx);
        for (std::int64_t c = 0; c < C; ++c) {
            const auto k = std::size_t(c);
            rm[k] = float((1.0 - p_.momentum) * rm[k] + p_.momentum * mean_[k]);
            rv[k] = float((1.0 - p_.momentum) * rv[k] + p_.momentum * (count_ > 1 ? m2[k] / (count_ - 1) : m2[k]));
        }
        running_mean.assign(ctx, rm);
        running_var.assign(ctx, rv);
    }

    /// dx from the global sums; dgamma and dbeta are this rank's shares.
    void backward(context<B>& ctx, dist::communicator& comm, const tensor<B>& dy, const tensor<B>& gamma, tensor<B>& dx,
                  tensor<B>& dgamma, tensor<B>& dbeta) {
        check(dy.shape() == shape_, "batch_norm: backward with dy ", dy.shape(), " after a forward of ", shape_);
        const std::int64_t N = shape_[0], C = shape_[1], S = dy.numel() / (N * C);
        if constexpr (normalises_with_given_statistics<B>) {
            // dx = k (dy - sum dy / n - x_hat sum(dy x_hat) / n) with k = gamma invstd and the
            // sums over every rank: the op computes k dy and this rank's sums; the rest is a
            // per-channel a + b x to take off.
            op_.backward_with_statistics(ctx, *x_, dy, gamma, *beta_, gmean_, gvar_, dx, dgamma, dbeta);
            const auto dg = dgamma.to_host(ctx), db = dbeta.to_host(ctx);
            std::vector<double> sums(std::size_t(2 * C));
            for (std::int64_t c = 0; c < C; ++c) {
                sums[std::size_t(c)] = db[std::size_t(c)];
                sums[std::size_t(C + c)] = dg[std::size_t(c)];
            }
            comm.all_reduce_sum(std::span<double>(sums));
            const auto g = gamma.to_host(ctx);
            std::vector<float> a(static_cast<std::size_t>(C)), b(static_cast<std::size_t>(C));
            for (std::int64_t c = 0; c < C; ++c) {
                const auto k = std::size_t(c);
                const double scale = double(g[k]) * invstd_[k], mdy = sums[k] / count_, mdyx = sums[std::size_t(C) + k] / count_;
                b[k] = float(scale * invstd_[k] * mdyx);
                a[k] = float(scale * (mdy - mean_[k] * invstd_[k] * mdyx));
            }
            set(ctx, a_, a);
            set(ctx, b_, b);
            op_.subtract_affine(ctx, *x_, a_, b_, dx);
            return;
        }
        auto d = dy.to_host(ctx);
        if (p_.fuse_relu)
            for (std::size_t i = 0; i < d.size(); ++i)
                if (!relu_mask_[i]) d[i] = 0.0f;
        std::vector<double> sums(std::size_t(2 * C), 0.0);  // sum dy, sum dy * x_hat
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t s = 0; s < S; ++s) {
                    const auto i = std::size_t((n * C + c) * S + s);
                    sums[std::size_t(c)] += d[i];
                    sums[std::size_t(C + c)] += double(d[i]) * xhat_[i];
                }
        std::vector<float> db(static_cast<std::size_t>(C)), dg(static_cast<std::size_t>(C));
        for (std::int64_t c = 0; c < C; ++c) {
            db[std::size_t(c)] = float(sums[std::size_t(c)]);
            dg[std::size_t(c)] = float(sums[std::size_t(C + c)]);
        }
        comm.all_reduce_sum(std::span<double>(sums));
        const auto g = gamma.to_host(ctx);
        std::vector<float> dxh(d.size());
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t c = 0; c < C; ++c) {
                const auto k = std::size_t(c);
                const double scale = double(g[k]) * invstd_[k], mdy = sums[k] / count_, mdyx = sums[std::size_t(C) + k] / count_;
                for (std::int64_t s = 0; s < S; ++s) {
                    const auto i = std::size_t((n * C + c) * S + s);
                    dxh[i] = float(scale * (d[i] - mdy - xhat_[i] * mdyx));
                }
            }
        dx = tensor<B>::from_host(ctx, shape_, dxh);
        dgamma = tensor<B>::from_host(ctx, shape{C}, dg);
        dbeta = tensor<B>::from_host(ctx, shape{C}, db);
    }

private:
    /// Per-channel values into a [C] tensor, reusing it from step to step.
    static void set(context<B>& ctx, tensor<B>& t, const std::vector<float>& v) {
        if (t.defined() && t.numel() == std::int64_t(v.size()))
            t.assign(ctx, v);
        else
            t = tensor<B>::from_host(ctx, shape{std::int64_t(v.size())}, v);
    }

    ops::batch_norm_params p_;
    ops::batch_norm<B> op_;
    shape shape_;
    std::vector<double> mean_, invstd_;
    double count_ = 0;
    std::vector<float> xhat_;            // host path
    std::vector<bool> relu_mask_;        // host path
    tensor<B> gmean_, gvar_, a_, b_;     // op path: the global statistics, the dx correction
    const tensor<B>* x_ = nullptr;       // op path: forward's input and shift, for backward
    const tensor<B>* beta_ = nullptr;
};

}  // namespace micle::nn
