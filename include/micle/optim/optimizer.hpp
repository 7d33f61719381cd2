#pragma once
// Optimizers: SGD (PyTorch's semantics), LARS (SimCLR's semantics) and AdamW (PyTorch's).
// Each takes the parameters once and updates them in place from their `grad`s.
//
// Parameter treatment: weight decay (and LARS's trust-ratio adaptation) applies to
// parameters whose role is `weight`; biases and batch-norm scales/shifts are excluded, as
// in SimCLR. `decay_all = true` restores PyTorch's default of decaying everything.
//
// The updates here run on the host for backends whose tensors live in host memory
// (reference, onednn) over each tensor's whole buffer, which is exact for blocked layouts
// too since their padding is zero in weights and gradients alike. A parameter may change
// layout (conv2d<onednn> layers move their weights to the layout their kernels prefer at
// the first forward): the optimizer's buffers follow it before each update
// (detail::param_buffers), and checkpoints hold them in plain order, like the weights.
// Device backends specialise each optimizer with fused kernels
// (micle/backend/cudnn/optim.hpp).
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "micle/core/concepts.hpp"
#include "micle/core/error.hpp"
#include "micle/nn/parameter.hpp"

namespace micle::optim {

template <class B>
concept host_memory_backend = requires(tensor<B>& t) {
    { t.host_buffer() } -> std::same_as<std::span<float>>;
};

/// Named optimizer state, for checkpoints: one flat f32 buffer per parameter and kind
/// (plus AdamW's step), wherever the optimizer keeps it (host or device memory).
struct state_entry {
    std::string name;
    std::size_t size = 0;                                ///< number of values
    std::function<std::vector<float>()> read;            ///< a host copy of the values
    std::function<void(std::span<const float>)> write;   ///< replaces them (`size` values)

    /// An entry for a host vector.
    static state_entry host(std::string name, std::vector<float>& v) {
        return {std::move(name), v.size(), [&v] { return v; },
                [&v](std::span<const float> in) { v.assign(in.begin(), in.end()); }};
    }
};

/// `entries` with `prefix` in front of each name (a learner's fixed checkpoint names).
inline std::vector<state_entry> prefixed(const std::string& prefix, std::vector<state_entry> entries) {
    for (auto& e : entries) e.name = prefix + e.name;
    return entries;
}

namespace detail {
template <class B>
void check_grads(const std::vector<nn::parameter<B>*>& params, const char* who) {
    for (const auto* p : params) {
        check(p->grad.defined() && p->grad.shape() == p->value.shape(), who, ": parameter ", p->name,
              " has no gradient of its shape ", p->value.shape(), " (run backward first)");
        if constexpr (host_layouts<B>)
            check(p->grad.desc() == p->value.desc(), who, ": parameter ", p->name,
                  " has its gradient in another memory layout than its values");
    }
}

template <class B, bool = host_layouts<B>>
struct layout_of {
    using type = std::monostate;
};
template <class B>
struct layout_of<B, true> {
    using type = decltype(std::declval<const tensor<B>&>().desc());
};

/// An optimizer's buffers for one parameter (momentum; AdamW's two moments), element for
/// element with the parameter's storage. `follow()`, before each update, moves them into
/// the parameter's current layout if it changed since; `entry` reads and writes one of
/// them in plain row-major order for checkpoints, whatever its layout.
template <class B>
class param_buffers {
public:
    param_buffers(nn::parameter<B>& p, std::size_t count) : p_(&p), bufs_(count) {
        const auto n = p.value.host_buffer().size();
        for (auto& b : bufs_) b.assign(n, 0.0f);
        if constexpr (host_layouts<B>) layout_ = p.value.desc();
    }
    std::vector<float>& operator[](std::size_t i) noexcept { return bufs_[i]; }

    void follow() {
        if constexpr (host_layouts<B>) {
            const auto now = p_->value.desc();
            if (now == layout_) return;
            for (auto& b : bufs_) {
                std::vector<float> moved(p_->value.host_buffer().size());
                tensor<B>::relayout_host(layout_, b, now, moved);
                b.swap(moved);
            }
            layout_ = now;
        }
    }

    state_entry entry(std::string name, std::size_t i) {
        auto& b = bufs_[i];
        const auto n = std::size_t(p_->value.numel());
        return {std::move(name), n,
                [this, &b, n] {
                    if constexpr (host_layouts<B>) {
                        std::vector<float> out(n);
                        tensor<B>::relayout_host(layout_, b, tensor<B>::plain_layout(p_->value.shape()), out);
                        return out;
                    } else {
                        (void)this;  // used in the other branch only (clang warns of an unused capture)
                        (void)n;
                        return b;
                    }
                },
                [this, &b, n](std::span<const float> in) {
                    check(in.size() == n, "optimizer state: ", in.size(), " values for parameter ", p_->name, " of ", n);
                    if constexpr (host_layouts<B>) tensor<B>::relayout_host(tensor<B>::plain_layout(p_->value.shape()), in, layout_, b);
                    else b.assign(in.begin(), in.end());
                }};
    }

private:
    nn::parameter<B>* p_;
    std::vector<std::vector<float>> bufs_;
    typename layout_of<B>::type layout_{};
};
/// AdamW's per-step constants after the step counter was advanced to t: the step size
/// lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t).
struct adam_scales {
    float step_size, inv_sqrt_c2;
};
inline adam_scales adam_scale(float lr, float beta1, float beta2, double t) {
    const double c1 = 1.0 - std::pow(double(beta1), t), c2 = 1.0 - std::pow(double(beta2), t);
    return {static_cast<float>(lr / c1), static_cast<float>(1.0 / std::sqrt(c2))};
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

namespace detail {
inline void validate(const sgd_config& c) {
    check<value_error>(c.momentum >= 0 && c.weight_decay >= 0, "sgd: momentum and weight decay must be >= 0");
}
}  // namespace detail

/// g = grad + wd * w;  buf = momentum * buf + g;  w -= lr * (nesterov ? g + momentum * buf : buf)
template <class B>
class sgd {
public:
    using config = sgd_config;
    static_assert(host_memory_backend<B>, "micle::optim::sgd: this generic version updates host memory; a device "
                                          "backend specialises it (include micle/backend/<name>.hpp)");
    sgd(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        for (auto* p : params_) buf_.emplace_back(*p, 1);
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "sgd");
        ctx.synchronize();
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            buf_[k].follow();
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto& buf = buf_[k][0];
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
        for (std::size_t k = 0; k < params_.size(); ++k) s.push_back(buf_[k].entry("momentum." + params_[k]->name, 0));
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<detail::param_buffers<B>> buf_;
};

// ---------------------------------------------------------------- LARS
struct lars_config {
    float momentum = 0.9f;
    float weight_decay = 1e-6f;
    float trust_coefficient = 0.001f;  ///< eta
    bool nesterov = false;
    bool decay_all = false;
};

namespace detail {
inline void validate(const lars_config& c) {
    check<value_error>(c.momentum >= 0 && c.weight_decay >= 0 && c.trust_coefficient > 0,
                       "lars: momentum and weight decay must be >= 0, the trust coefficient > 0");
}
}  // namespace detail

/// SimCLR's LARS (lars_optimizer.py): for decayed parameters g = grad + wd * w and
/// trust = eta * ||w|| / ||g|| (1 when either norm is 0); excluded parameters use g = grad
/// and trust = 1. Then v = momentum * v + lr * trust * g;  w -= v (or, with Nesterov,
/// w -= momentum * v + lr * trust * g).
template <class B>
class lars {
public:
    using config = lars_config;
    static_assert(host_memory_backend<B>, "micle::optim::lars: this generic version updates host memory; a device "
                                          "backend specialises it (include micle/backend/<name>.hpp)");
    lars(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        for (auto* p : params_) v_.emplace_back(*p, 1);
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "lars");
        ctx.synchronize();
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            v_[k].follow();
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto& v = v_[k][0];
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
        for (std::size_t k = 0; k < params_.size(); ++k) s.push_back(v_[k].entry("momentum." + params_[k]->name, 0));
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<detail::param_buffers<B>> v_;
};

// ---------------------------------------------------------------- AdamW
struct adamw_config {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    float weight_decay = 1e-2f;
    bool decay_all = false;
};

namespace detail {
inline void validate(const adamw_config& c) {
    check<value_error>(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps > 0,
                       "adamw: betas must be in [0, 1) and eps > 0");
}
}  // namespace detail

/// PyTorch's AdamW: w *= 1 - lr * wd (decoupled); m, v moments with bias correction;
/// w -= lr * m_hat / (sqrt(v_hat) + eps).
template <class B>
class adamw {
public:
    using config = adamw_config;
    static_assert(host_memory_backend<B>, "micle::optim::adamw: this generic version updates host memory; a device "
                                          "backend specialises it (include micle/backend/<name>.hpp)");
    adamw(const config& cfg, std::vector<nn::parameter<B>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        for (auto* p : params_) moments_.emplace_back(*p, 2);
    }

    void step(context<B>& ctx, float lr) {
        detail::check_grads(params_, "adamw");
        ctx.synchronize();
        step_count_[0] += 1.0f;
        const auto [step_size, inv_sqrt_c2] = detail::adam_scale(lr, cfg_.beta1, cfg_.beta2, step_count_[0]);
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            moments_[k].follow();
            auto w = p->value.host_buffer();
            const auto g = p->grad.host_buffer();
            auto &m = moments_[k][0], &v = moments_[k][1];
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
        std::vector<state_entry> s{state_entry::host("step", step_count_)};
        for (std::size_t k = 0; k < params_.size(); ++k) {
            s.push_back(moments_[k].entry("exp_avg." + params_[k]->name, 0));
            s.push_back(moments_[k].entry("exp_avg_sq." + params_[k]->name, 1));
        }
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<B>*> params_;
    std::vector<detail::param_buffers<B>> moments_;
    std::vector<float> step_count_ = {0.0f};
};

}  // namespace micle::optim
