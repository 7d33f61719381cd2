#pragma once
// The linear classifier head of fine-tuning and linear probes: torchvision's `fc`, with an
// optional batch norm over the features before it (SimCLR's linear evaluation).
#include <memory>
#include <string>

#include "micle/core/error.hpp"
#include "micle/core/rng.hpp"
#include "micle/nn/layers.hpp"

namespace micle::heads {

struct linear_config {
    std::int64_t classes = 10;
    std::string prefix = "fc";  ///< torchvision's classifier name
    /// Batch norm over the features before the classifier (`<prefix>_norm`), as SimCLR's
    /// linear evaluation: features of very different scales - a random or barely trained
    /// encoder's - otherwise leave SGD on the classifier stuck at the majority class. Its
    /// scale and shift train with the classifier (which could absorb them anyway).
    bool feature_norm = false;
};

/// A linear classifier on the backbone's features (fine-tuning and linear probes).
template <class B>
class linear {
public:
    using config = linear_config;

    linear(context<B>& ctx, const config& cfg, std::int64_t in, std::uint64_t seed)
        : gen_(derive_seed(seed, {0x6c696e6561ull})), fc_(ctx, cfg.prefix, in, cfg.classes, true, gen_) {
        check<value_error>(cfg.classes > 0, "linear head: classes must be positive, got ", cfg.classes);
        if (cfg.feature_norm) norm_ = std::make_unique<nn::batch_norm<B>>(ctx, cfg.prefix + "_norm", in, false);
    }

    std::int64_t output_dim() const { return fc_.out_features(); }
    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
        input_ = &x;
        return fc_.forward(ctx, norm_ ? norm_->forward(ctx, x, training) : x);
    }
    const tensor<B>& backward(context<B>& ctx, const tensor<B>& dy) {
        check(input_ != nullptr, "linear head: backward called before forward");
        if (!norm_) return fc_.backward(ctx, *input_, dy);
        return norm_->backward(ctx, *input_, fc_.backward(ctx, norm_->output(), dy));
    }
    nn::state_list<B> state() {
        auto s = fc_.state();
        if (norm_) s.append(norm_->state());
        return s;
    }

private:
    rng gen_;
    nn::linear<B> fc_;
    std::unique_ptr<nn::batch_norm<B>> norm_;
    const tensor<B>* input_ = nullptr;
};

}  // namespace micle::heads
