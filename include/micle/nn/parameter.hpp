#pragma once
// Named model state. Names are PyTorch state_dict names (torchvision's for backbones,
// `head.` for heads), so checkpoints move to and from PyTorch without conversion.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "micle/core/backend.hpp"

namespace micle::nn {

/// What a parameter is, which decides its optimizer treatment: SimCLR's LARS (and micle's
/// default for every optimizer) applies weight decay and trust-ratio adaptation to
/// `weight`s only, never to biases or normalisation scales and shifts.
enum class param_role : std::uint8_t { weight, bias, norm_scale, norm_shift };

template <class B>
struct parameter {
    std::string name;
    tensor<B> value;
    tensor<B> grad;  ///< written (not accumulated) by the owning layer's backward
    param_role role = param_role::weight;
    /// Called by the owning layer's backward as soon as `grad` is written (set by a
    /// data-parallel learner: dist::gradient_buckets starts a bucket's all-reduce from it
    /// while the rest of the backward pass runs). Empty: nothing to call.
    std::function<void()> on_grad{};

    bool decays() const noexcept { return role == param_role::weight; }
    void grad_written() {
        if (on_grad) on_grad();
    }
};

/// Non-trained state saved with the model (batch-norm running statistics).
template <class B>
struct buffer {
    std::string name;
    tensor<B> value;
};

/// Integer state saved with the model (batch norm's num_batches_tracked).
struct counter {
    std::string name;
    std::int64_t value = 0;
};

template <class B>
class batch_norm;

/// Pointers to every piece of a module's state, in a stable order; and its batch-norm
/// layers (which a data-parallel run may make cross-replica).
template <class B>
struct state_list {
    std::vector<parameter<B>*> params;
    std::vector<buffer<B>*> buffers;
    std::vector<counter*> counters;
    std::vector<batch_norm<B>*> norms;

    void append(const state_list& o) {
        params.insert(params.end(), o.params.begin(), o.params.end());
        buffers.insert(buffers.end(), o.buffers.begin(), o.buffers.end());
        counters.insert(counters.end(), o.counters.begin(), o.counters.end());
        norms.insert(norms.end(), o.norms.begin(), o.norms.end());
    }
    std::int64_t parameter_count() const {
        std::int64_t n = 0;
        for (const auto* p : params) n += p->value.numel();
        return n;
    }
};

}  // namespace micle::nn
