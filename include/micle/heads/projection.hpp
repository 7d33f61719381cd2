#pragma once
// SimCLR's projection head: an MLP (v1: 2 layers, v2: 3 layers with batch norm). Parameter
// names are those of a PyTorch nn.Sequential under the head's prefix (`head.0.weight`,
// `head.1.running_mean`, ...), as a PyTorch port would name them. The classifier head of
// fine-tuning is heads/linear.hpp.
#include <memory>
#include <string>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/nn/layers.hpp"

namespace micle::heads {

struct projection_config {
    int layers = 2;              ///< 2: SimCLR v1, 3: SimCLR v2
    bool batch_norm = false;     ///< BN after every linear layer (v2: true; then no biases)
    std::int64_t hidden = 0;     ///< 0: the backbone's feature width
    std::int64_t out = 128;
    std::string prefix = "head";

    static projection_config simclr_v1() { return {}; }
    static projection_config simclr_v2() { return {3, true, 0, 128, "head"}; }
};

/// Linear -> [BN] -> ReLU -> ... -> Linear [-> BN]: the last layer has no ReLU.
template <class B>
class projection {
public:
    using config = projection_config;

    projection(context<B>& ctx, const config& cfg, std::int64_t in, std::uint64_t seed) : cfg_(cfg) {
        check<value_error>(cfg.layers >= 2 && cfg.layers <= 3, "projection head: layers must be 2 or 3, got ", cfg.layers);
        check<value_error>(cfg.out > 0 && in > 0 && cfg.hidden >= 0, "projection head: widths must be positive");
        rng gen(derive_seed(seed, {0x68656164ull}));
        const std::int64_t hidden = cfg.hidden > 0 ? cfg.hidden : in;
        int index = 0;  // nn.Sequential index: Linear, [BN], [ReLU], ...
        for (int l = 0; l < cfg.layers; ++l) {
            const bool last = l + 1 == cfg.layers;
            stage s;
            s.fc = std::make_unique<nn::linear<B>>(ctx, name(index++), l == 0 ? in : hidden, last ? cfg.out : hidden,
                                                   !cfg.batch_norm, gen);
            if (cfg.batch_norm) s.bn = std::make_unique<nn::batch_norm<B>>(ctx, name(index++), s.fc->out_features(), !last);
            s.relu = !last;
            if (s.relu) ++index;
            stages_.push_back(std::move(s));
        }
    }

    std::int64_t output_dim() const { return cfg_.out; }

    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
        input_ = &x;
        const tensor<B>* h = &x;
        for (auto& s : stages_) {
            h = &s.fc->forward(ctx, *h);
            if (s.bn)
                h = &s.bn->forward(ctx, *h, training);  // ReLU fused into BN
            else if (s.relu) {
                s.relu_op.forward(ctx, *h, s.act);
                h = &s.act;
            }
        }
        return *h;
    }

    const tensor<B>& backward(context<B>& ctx, const tensor<B>& dy) {
        check(input_ != nullptr, "projection head: backward called before forward");
        const tensor<B>* d = &dy;
        for (std::size_t i = stages_.size(); i-- > 0;) {
            auto& s = stages_[i];
            if (s.bn) {
                d = &s.bn->backward(ctx, s.fc->output(), *d);
            } else if (s.relu) {
                s.relu_op.backward(ctx, s.fc->output(), *d, s.dact);
                d = &s.dact;
            }
            const tensor<B>& in = i == 0 ? *input_ : stages_[i - 1].output();
            d = &s.fc->backward(ctx, in, *d);
        }
        return *d;
    }

    nn::state_list<B> state() {
        nn::state_list<B> st;
        for (auto& s : stages_) {
            st.append(s.fc->state());
            if (s.bn) st.append(s.bn->state());
        }
        return st;
    }

private:
    struct stage {
        std::unique_ptr<nn::linear<B>> fc;
        std::unique_ptr<nn::batch_norm<B>> bn;
        bool relu = false;
        ops::relu<B> relu_op;
        tensor<B> act, dact;
        const tensor<B>& output() const { return bn ? bn->output() : (relu ? act : fc->output()); }
    };
    std::string name(int index) const { return cfg_.prefix + "." + std::to_string(index); }

    config cfg_;
    std::vector<stage> stages_;
    const tensor<B>* input_ = nullptr;
};

}  // namespace micle::heads
