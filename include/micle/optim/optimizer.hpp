#pragma once
// Optimizers: SGD (PyTorch's semantics), LARS (SimCLR's semantics) and AdamW (PyTorch's).
// Each takes the parameters once and updates them in place from their `grad`s.
//
// Parameter treatment: weight decay (and LARS's trust-ratio adaptation) applies to
// parameters whose role is `weight`; biases and batch-norm scales/shifts are excluded, as
// in SimCLR. `decay_all = true` restores PyTorch's default of decaying everything.
//
// The updates run on the host for backends whose tensors live in host memory (reference,
// onednn) over each tensor's whole buffer, which is exact for blocked layouts too since
// their padding is zero in weights and gradients alike.
#include <cmath>
#include <concepts>
#include <span>
#include <string>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/nn/parameter.hpp"

namespace micle::optim {

template <class B>
concept host_memory_backend = requires(tensor<B>& t) {
    { t.host_buffer() } -> std::same_as<std::span<float>>;
};

/// Named optimizer state, for checkpoints: one host vector per parameter and kind.
struct state_entry {
    std::string name;
    std::vector<float>* values;
};

namespace detail {
template <class B>
void check_grads(const std::vector<nn::parameter<B>*>& params, const char* who) {
    for (const auto* p : params)
        check(p->grad.defined() && p->grad.shape() == p->value.shape(), who, ": parameter ", p->name,
              " has no gradient of its shape ", p->value.shape(), " (run backward first)");
}
inline double squared_norm(std::span<const float> v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return s;
}
}  // namespace detail

// ---------------------------------------------------------------- SGD
struct sgd_config {
    float momentum = 0.9f;
    float weight_decay = 0.0f;
    bool nesterov = false;
    bool decay_all = false;
};

/// g = grad + wd * w;  buf = momentum * buf + g;  w -= lr * (nesterov ? g + momentum * buf : buf)
template <class B>
    requires host_memory_backend<B>
class sgd {
public:
    using config = sgd_config;
    sgd(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        check<value_error>(cfg.momentum >= 0 && cfg.weight_decay >= 0, "sgd: momentum and weight decay must be >= 0");
        for (auto* p : params_) buf_.emplace_back(p->value.host_buffer().size(), 0.0f);
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "sgd");
        ctx.synchronize();
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto& buf = buf_[k];
            const float wd = (cfg_.decay_all || p->decays()) ? cfg_.weight_decay : 0.0f;
            for (std::size_t i = 0; i < w.size(); ++i) {
                const float gi = g[i] + wd * w[i];
                buf[i] = cfg_.momentum * buf[i] + gi;
                w[i] -= lr * (cfg_.nesterov ? gi + cfg_.momentum * buf[i] : buf[i]);
            }
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s;
        for (std::size_t k = 0; k < params_.size(); ++k) s.push_back({"momentum." + params_[k]->name, &buf_[k]});
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<std::vector<float>> buf_;
};

// ---------------------------------------------------------------- LARS
struct lars_config {
    float momentum = 0.9f;
    float weight_decay = 1e-6f;
    float trust_coefficient = 0.001f;  ///< eta
    bool nesterov = false;
    bool decay_all = false;
};

/// SimCLR's LARS (lars_optimizer.py): for decayed parameters g = grad + wd * w and
/// trust = eta * ||w|| / ||g|| (1 when either norm is 0); excluded parameters use g = grad
/// and trust = 1. Then v = momentum * v + lr * trust * g;  w -= v (or, with Nesterov,
/// w -= momentum * v + lr * trust * g).
template <class B>
    requires host_memory_backend<B>
class lars {
public:
    using config = lars_config;
    lars(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        check<value_error>(cfg.momentum >= 0 && cfg.weight_decay >= 0 && cfg.trust_coefficient > 0,
                           "lars: momentum and weight decay must be >= 0, the trust coefficient > 0");
        for (auto* p : params_) v_.emplace_back(p->value.host_buffer().size(), 0.0f);
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "lars");
        ctx.synchronize();
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto& v = v_[k];
            const bool adapt = cfg_.decay_all || p->decays();
            const float wd = adapt ? cfg_.weight_decay : 0.0f;
            float trust = 1.0f;
            if (adapt) {
                double gn = 0;
                for (std::size_t i = 0; i < w.size(); ++i) {
                    const double gi = double(g[i]) + double(wd) * w[i];
                    gn += gi * gi;
                }
                const double wn = std::sqrt(detail::squared_norm(w));
                gn = std::sqrt(gn);
                if (wn > 0 && gn > 0) trust = static_cast<float>(cfg_.trust_coefficient * wn / gn);
            }
            const float scaled = lr * trust;
            for (std::size_t i = 0; i < w.size(); ++i) {
                const float gi = g[i] + wd * w[i];
                v[i] = cfg_.momentum * v[i] + scaled * gi;
                w[i] -= cfg_.nesterov ? cfg_.momentum * v[i] + scaled * gi : v[i];
            }
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s;
        for (std::size_t k = 0; k < params_.size(); ++k) s.push_back({"momentum." + params_[k]->name, &v_[k]});
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<std::vector<float>> v_;
};

// ---------------------------------------------------------------- AdamW
struct adamw_config {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    float weight_decay = 1e-2f;
    bool decay_all = false;
};

/// PyTorch's AdamW: w *= 1 - lr * wd (decoupled); m, v moments with bias correction;
/// w -= lr * m_hat / (sqrt(v_hat) + eps).
template <class B>
    requires host_memory_backend<B>
class adamw {
public:
    using config = adamw_config;
    adamw(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        check<value_error>(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1 && cfg.eps > 0,
                           "adamw: betas must be in [0, 1) and eps > 0");
        for (auto* p : params_) {
            m_.emplace_back(p->value.host_buffer().size(), 0.0f);
            v_.emplace_back(p->value.host_buffer().size(), 0.0f);
        }
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "adamw");
        ctx.synchronize();
        step_count_[0] += 1.0f;
        const double t = step_count_[0];
        const double c1 = 1.0 - std::pow(double(cfg_.beta1), t), c2 = 1.0 - std::pow(double(cfg_.beta2), t);
        const float step_size = static_cast<float>(lr / c1);
        const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto &m = m_[k], &v = v_[k];
            const float decay = 1.0f - lr * ((cfg_.decay_all || p->decays()) ? cfg_.weight_decay : 0.0f);
            for (std::size_t i = 0; i < w.size(); ++i) {
                w[i] *= decay;
                m[i] = cfg_.beta1 * m[i] + (1.0f - cfg_.beta1) * g[i];
                v[i] = cfg_.beta2 * v[i] + (1.0f - cfg_.beta2) * g[i] * g[i];
                w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + cfg_.eps);
            }
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s{{"step", &step_count_}};
        for (std::size_t k = 0; k < params_.size(); ++k) {
            s.push_back({"exp_avg." + params_[k]->name, &m_[k]});
            s.push_back({"exp_avg_sq." + params_[k]->name, &v_[k]});
        }
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<std::vector<float>> m_, v_;
    std::vector<float> step_count_ = {0.0f};
};

}  // namespace micle::optim
