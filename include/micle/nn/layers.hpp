#pragma once
// Layers: an op plus the parameters it trains and the activations its backward pass needs.
// A layer owns its output and input-gradient tensors, so a network allocates nothing
// after the first step. Backward passes write (do not accumulate) parameter gradients.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "micle/core/ops.hpp"
#include "micle/core/rng.hpp"
#include "micle/nn/cross_replica_batch_norm.hpp"
#include "micle/nn/parameter.hpp"

namespace micle::nn {

namespace detail {
template <class B>
tensor<B> host_init(context<B>& ctx, const shape& s, rng& gen, float (*draw)(rng&, float), float scale) {
    std::vector<float> v(static_cast<std::size_t>(s.numel()));
    for (auto& e : v) e = draw(gen, scale);
    return tensor<B>::from_host(ctx, s, v);
}
inline float normal_draw(rng& g, float std) { return g.normal() * std; }
inline float uniform_draw(rng& g, float bound) { return g.uniform(-bound, bound); }
template <class B>
tensor<B> constant(context<B>& ctx, const shape& s, float v) {
    return tensor<B>::from_host(ctx, s, std::vector<float>(static_cast<std::size_t>(s.numel()), v));
}
}  // namespace detail

/// An op with a weight and an optional bias (convolution, fully connected): the forward
/// and backward passes and the state they share. `Op` takes (ctx, x, w, bias*, y) forward,
/// backward_weights(ctx, x, dy, dw, dbias*) and backward_data(ctx, dy, w, dx).
template <class B, class Op>
class weighted_layer {
public:
    /// At the first call the weights move to the layout the op prefers for inputs like
    /// `x`, where the backend has one (conv2d<onednn>::adopt_preferred_layout): later steps
    /// then read them, and write their gradient, without reorders. Optimizers follow the
    /// move; to_host and checkpoints keep seeing the plain (torchvision) order.
    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x) {
        if constexpr (requires(Op& op, tensor<B>& w) { op.adopt_preferred_layout(ctx, x, w, true); }) {
            if (!layout_adopted_) op_.adopt_preferred_layout(ctx, x, weight_.value, has_bias_);
            layout_adopted_ = true;
        }
        op_.forward(ctx, x, weight_.value, has_bias_ ? &bias_.value : nullptr, y_);
        return y_;
    }
    /// Parameter gradients from (x, dy); the input gradient too unless `need_dx` is false
    /// (the first layer of a network). Returns dx (empty when not computed).
    const tensor<B>& backward(context<B>& ctx, const tensor<B>& x, const tensor<B>& dy, bool need_dx = true) {
        op_.backward_weights(ctx, x, dy, weight_.grad, has_bias_ ? &bias_.grad : nullptr);
        weight_.grad_written();
        if (has_bias_) bias_.grad_written();
        if (need_dx) op_.backward_data(ctx, dy, weight_.value, dx_);
        return dx_;
    }

    parameter<B>& weight() noexcept { return weight_; }
    const tensor<B>& output() const noexcept { return y_; }
    state_list<B> state() {
        state_list<B> s;
        s.params.push_back(&weight_);
        if (has_bias_) s.params.push_back(&bias_);
        return s;
    }

protected:
    explicit weighted_layer(Op op) : op_(std::move(op)) {}
    /// Set by the derived constructor's body, in statement order: random draws for weight
    /// and bias happen in a defined order (function arguments would not guarantee one).
    void set_parameters(parameter<B> weight, std::optional<parameter<B>> bias) {
        weight_ = std::move(weight);
        has_bias_ = bias.has_value();
        if (bias) bias_ = std::move(*bias);
    }

private:
    Op op_;
    bool has_bias_ = false, layout_adopted_ = false;
    parameter<B> weight_, bias_;
    tensor<B> y_, dx_;
};

/// 2-D convolution layer, torchvision's initialisation for ResNets: weights from
/// N(0, 2 / fan_out) (kaiming normal, mode fan_out, ReLU gain), bias 0.
template <class B>
class conv2d : public weighted_layer<B, ops::conv2d<B>> {
public:
    conv2d(context<B>& ctx, const std::string& name, std::int64_t in, std::int64_t out, std::int64_t kernel,
           std::int64_t stride, std::int64_t pad, bool bias, rng& gen)
        : weighted_layer<B, ops::conv2d<B>>(ops::conv2d<B>({kernel, kernel, stride, stride, pad, pad})) {
        const float std = std::sqrt(2.0f / float(out * kernel * kernel));
        parameter<B> w{name + ".weight", detail::host_init(ctx, {out, in, kernel, kernel}, gen, detail::normal_draw, std),
                       tensor<B>{}, param_role::weight};
        std::optional<parameter<B>> b;
        if (bias) b = parameter<B>{name + ".bias", detail::constant(ctx, {out}, 0.0f), tensor<B>{}, param_role::bias};
        this->set_parameters(std::move(w), std::move(b));
    }
};

/// Batch normalisation layer (2-D or 4-D input), optional fused ReLU; PyTorch's running
/// statistics and num_batches_tracked.
template <class B>
class batch_norm {
public:
    batch_norm(context<B>& ctx, std::string name, std::int64_t channels, bool relu, bool zero_gamma = false)
        : op_(ops::batch_norm_params{1e-5f, 0.1f, relu}), global_(ops::batch_norm_params{1e-5f, 0.1f, relu}) {
        gamma_ = {name + ".weight", detail::constant(ctx, {channels}, zero_gamma ? 0.0f : 1.0f), tensor<B>{},
                  param_role::norm_scale};
        beta_ = {name + ".bias", detail::constant(ctx, {channels}, 0.0f), tensor<B>{}, param_role::norm_shift};
        mean_ = {name + ".running_mean", detail::constant(ctx, {channels}, 0.0f)};
        var_ = {name + ".running_var", detail::constant(ctx, {channels}, 1.0f)};
        batches_ = {name + ".num_batches_tracked", 0};
    }

    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
        if (training) {
            if (cross_replica())
                global_.forward_training(ctx, *sync_, x, gamma_.value, beta_.value, mean_.value, var_.value, y_);
            else
                op_.forward_training(ctx, x, gamma_.value, beta_.value, mean_.value, var_.value, y_);
            ++batches_.value;
        } else {
            op_.forward_inference(ctx, x, gamma_.value, beta_.value, mean_.value, var_.value, y_);
        }
        return y_;
    }
    const tensor<B>& backward(context<B>& ctx, const tensor<B>& x, const tensor<B>& dy) {
        if (cross_replica())
            global_.backward(ctx, *sync_, dy, gamma_.value, dx_, gamma_.grad, beta_.grad);
        else
            op_.backward(ctx, x, dy, gamma_.value, beta_.value, dx_, gamma_.grad, beta_.grad);
        gamma_.grad_written();
        beta_.grad_written();
        return dx_;
    }

    /// Training statistics over the global batch of every rank of `comm` (cross-replica
    /// batch norm); nullptr: this rank's batch only (the default).
    void synchronize(dist::communicator* comm) { sync_ = comm; }
    bool cross_replica() const { return sync_ && sync_->size() > 1; }

    state_list<B> state() {
        state_list<B> s;
        s.params = {&gamma_, &beta_};
        s.buffers = {&mean_, &var_};
        s.counters = {&batches_};
        s.norms = {this};
        return s;
    }
    parameter<B>& gamma() noexcept { return gamma_; }
    const tensor<B>& output() const noexcept { return y_; }

private:
    ops::batch_norm<B> op_;
    cross_replica_batch_norm<B> global_;
    dist::communicator* sync_ = nullptr;
    parameter<B> gamma_, beta_;
    buffer<B> mean_, var_;
    counter batches_;
    tensor<B> y_, dx_;
};

/// Fully connected layer, PyTorch's default initialisation: weight and bias from
/// U(-1/sqrt(in), 1/sqrt(in)).
template <class B>
class linear : public weighted_layer<B, ops::linear<B>> {
public:
    linear(context<B>& ctx, const std::string& name, std::int64_t in, std::int64_t out, bool bias, rng& gen)
        : weighted_layer<B, ops::linear<B>>(ops::linear<B>{}), out_(out) {
        const float bound = 1.0f / std::sqrt(float(in));
        parameter<B> w{name + ".weight", detail::host_init(ctx, {out, in}, gen, detail::uniform_draw, bound), tensor<B>{},
                       param_role::weight};
        std::optional<parameter<B>> b;
        if (bias)
            b = parameter<B>{name + ".bias", detail::host_init(ctx, {out}, gen, detail::uniform_draw, bound), tensor<B>{},
                             param_role::bias};
        this->set_parameters(std::move(w), std::move(b));
    }

    std::int64_t out_features() const noexcept { return out_; }

private:
    std::int64_t out_;
};

}  // namespace micle::nn
