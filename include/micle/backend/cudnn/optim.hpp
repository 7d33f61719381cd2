#pragma once
// The optimizers on the GPU: the same update rules as micle/optim/optimizer.hpp (same
// configs, same parameter treatment, same checkpoint names), as one fused kernel per
// parameter on the context's stream, with the state in device memory. LARS computes its
// per-layer norms on the device (a fixed-order two-pass reduction), so a step never waits
// for the host.
#include <cmath>
#include <string>
#include <vector>

#include "micle/backend/cudnn/tensor.hpp"
#include "micle/optim/optimizer.hpp"

namespace micle::cudnn_detail {

/// A checkpoint entry for a device tensor (read and written through its own stream).
inline optim::state_entry device_entry(std::string name, tensor<cudnn>& t) {
    return {std::move(name), static_cast<std::size_t>(t.numel()), [&t] { return t.download(); },
            [&t](std::span<const float> in) { t.upload(in); }};
}

/// f32 device state tensors shaped like each parameter, zero.
inline std::vector<tensor<cudnn>> zero_state(const std::vector<nn::parameter<cudnn>*>& params) {
    std::vector<tensor<cudnn>> s;
    s.reserve(params.size());
    for (const auto* p : params) s.push_back(tensor<cudnn>::zeros_like(p->value));
    return s;
}

inline void check_f32_params(const std::vector<nn::parameter<cudnn>*>& params, const char* who) {
    for (const auto* p : params)
        check(p->value.dtype() == dtype::f32, who, ": parameter ", p->name, " is ", p->value.dtype(),
              "; master weights are f32");
}

}  // namespace micle::cudnn_detail

namespace micle::optim {

template <>
class sgd<cudnn> {
public:
    using config = sgd_config;
    sgd(const config& cfg, std::vector<nn::parameter<cudnn>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        cudnn_detail::check_f32_params(params_, "sgd");
        buf_ = cudnn_detail::zero_state(params_);
    }

    void step(context<cudnn>& ctx, float lr) {
        detail::check_grads(params_, "sgd");
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            const float wd = (cfg_.decay_all || p->decays()) ? cfg_.weight_decay : 0.0f;
            cudnn_detail::kernels::sgd(ctx.stream(), p->value.f32(), p->grad.f32(), buf_[k].f32(), p->value.numel(), lr,
                                       cfg_.momentum, wd, cfg_.nesterov);
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s;
        for (std::size_t k = 0; k < params_.size(); ++k)
            s.push_back(cudnn_detail::device_entry("momentum." + params_[k]->name, buf_[k]));
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<cudnn>*> params_;
    std::vector<tensor<cudnn>> buf_;
};

template <>
class lars<cudnn> {
public:
    using config = lars_config;
    lars(const config& cfg, std::vector<nn::parameter<cudnn>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        cudnn_detail::check_f32_params(params_, "lars");
        v_ = cudnn_detail::zero_state(params_);
    }

    void step(context<cudnn>& ctx, float lr) {
        detail::check_grads(params_, "lars");
        double* partial = partial_.ensure(ctx.runtime_ptr(), 2 * cudnn_detail::kernels::lars_blocks);
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            const bool adapt = cfg_.decay_all || p->decays();
            cudnn_detail::kernels::lars(ctx.stream(), p->value.f32(), p->grad.f32(), v_[k].f32(), p->value.numel(), lr,
                                        cfg_.momentum, adapt ? cfg_.weight_decay : 0.0f, cfg_.trust_coefficient, adapt,
                                        cfg_.nesterov, partial);
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s;
        for (std::size_t k = 0; k < params_.size(); ++k)
            s.push_back(cudnn_detail::device_entry("momentum." + params_[k]->name, v_[k]));
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<cudnn>*> params_;
    std::vector<tensor<cudnn>> v_;
    cudnn_detail::device_array<double> partial_;
};

template <>
class adamw<cudnn> {
public:
    using config = adamw_config;
    adamw(const config& cfg, std::vector<nn::parameter<cudnn>*> params) : cfg_(cfg), params_(std::move(params)) {
        detail::validate(cfg);
        cudnn_detail::check_f32_params(params_, "adamw");
        m_ = cudnn_detail::zero_state(params_);
        v_ = cudnn_detail::zero_state(params_);
    }

    void step(context<cudnn>& ctx, float lr) {
        detail::check_grads(params_, "adamw");
        step_count_[0] += 1.0f;
        const auto [step_size, inv_sqrt_c2] = detail::adam_scale(lr, cfg_.beta1, cfg_.beta2, step_count_[0]);
        for (std::size_t k = 0; k < params_.size(); ++k) {
            auto* p = params_[k];
            const float decay = 1.0f - lr * ((cfg_.decay_all || p->decays()) ? cfg_.weight_decay : 0.0f);
            cudnn_detail::kernels::adamw(ctx.stream(), p->value.f32(), p->grad.f32(), m_[k].f32(), v_[k].f32(),
                                         p->value.numel(), decay, cfg_.beta1, cfg_.beta2, step_size, inv_sqrt_c2,
                                         cfg_.eps);
        }
    }

    std::vector<state_entry> state() {
        std::vector<state_entry> s{state_entry::host("step", step_count_)};
        for (std::size_t k = 0; k < params_.size(); ++k) {
            s.push_back(cudnn_detail::device_entry("exp_avg." + params_[k]->name, m_[k]));
            s.push_back(cudnn_detail::device_entry("exp_avg_sq." + params_[k]->name, v_[k]));
        }
        return s;
    }

private:
    config cfg_;
    std::vector<nn::parameter<cudnn>*> params_;
    std::vector<tensor<cudnn>> m_, v_;
    std::vector<float> step_count_ = {0.0f};
};

}  // namespace micle::optim
