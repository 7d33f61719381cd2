#pragma once
// ResNet backbones as torchvision builds them (v1.5: stride on the 3x3 convolution of a
// bottleneck), plus SimCLR's width multiplier and a small-image stem. The network is a
// runtime table of blocks, not a type per layer: one instantiation per backend.
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/rng.hpp"
#include "micle/models/backbone.hpp"
#include "micle/nn/layers.hpp"

namespace micle::models {

enum class stem_kind : std::uint8_t {
    imagenet,  ///< 7x7 stride-2 convolution + 3x3 stride-2 max pool (224 px images)
    small,     ///< 3x3 stride-1 convolution, no pool (28-64 px images, as SimCLR's CIFAR model)
};

struct resnet_config {
    int depth = 50;                 ///< 18, 34 (basic blocks), 50, 101, 152 (bottlenecks)
    int width = 1;                  ///< SimCLR width multiplier: 1, 2 or 4 (every channel count)
    stem_kind stem = stem_kind::imagenet;
    std::int64_t in_channels = 3;   ///< 1 (grayscale X-rays) or 3
    bool zero_init_residual = false;///< last BN gamma of each block starts at 0
    std::int64_t num_classes = 0;   ///< > 0 adds torchvision's `fc` classifier
    std::int64_t base_channels = 64;///< stem width before the multiplier (64 in torchvision; tests use less)

    bool bottleneck() const { return depth >= 50; }
    std::int64_t expansion() const { return bottleneck() ? 4 : 1; }
    std::array<int, 4> blocks() const {
        switch (depth) {
            case 18: return {2, 2, 2, 2};
            case 34:
            case 50: return {3, 4, 6, 3};
            case 101: return {3, 4, 23, 3};
            case 152: return {3, 8, 36, 3};
            default: throw value_error(detail::cat("resnet: depth ", depth, " is not one of 18, 34, 50, 101, 152"));
        }
    }
    /// Width of the pooled features (the `fc` input): 512 * expansion * width for base 64.
    std::int64_t feature_dim() const { return 8 * base_channels * width * expansion(); }

    /// One convolution of the network (each followed by a batch norm).
    struct conv_plan {
        std::string name;  ///< e.g. "layer2.0.conv2", "layer2.0.downsample.0"
        std::string bn;    ///< e.g. "layer2.0.bn2", "layer2.0.downsample.1"
        std::int64_t in, out, kernel, stride;
    };
    /// A residual block: its convolutions in order, then the projection shortcut if any.
    struct block_plan {
        std::vector<conv_plan> convs;
        bool has_shortcut = false;
    };

    /// The blocks of layer1..layer4, as torchvision builds them. The model is built from
    /// this table and the parameter count below is computed from it.
    std::vector<block_plan> plan() const {
        std::vector<block_plan> out;
        const std::int64_t w0 = base_channels * width;
        std::int64_t in = w0;
        const auto counts = blocks();
        for (int stage = 0; stage < 4; ++stage) {
            const std::int64_t planes = w0 << stage;
            const std::int64_t channels = planes * expansion();
            for (int b = 0; b < counts[static_cast<std::size_t>(stage)]; ++b) {
                const std::int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
                const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
                block_plan bp;
                auto conv = [&](int i, std::int64_t ci, std::int64_t co, std::int64_t k, std::int64_t st) {
                    bp.convs.push_back({p + ".conv" + std::to_string(i), p + ".bn" + std::to_string(i), ci, co, k, st});
                };
                if (bottleneck()) {
                    conv(1, in, planes, 1, 1);
                    conv(2, planes, planes, 3, stride);
                    conv(3, planes, channels, 1, 1);
                } else {
                    conv(1, in, planes, 3, stride);
                    conv(2, planes, channels, 3, 1);
                }
                if (stride != 1 || in != channels) {
                    bp.has_shortcut = true;
                    bp.convs.push_back({p + ".downsample.0", p + ".downsample.1", in, channels, 1, stride});
                }
                out.push_back(std::move(bp));
                in = channels;
            }
        }
        return out;
    }

    /// Trainable parameters (conv weights, BN scales and shifts, fc weight and bias).
    std::int64_t parameter_count() const {
        const std::int64_t w0 = base_channels * width, k0 = stem == stem_kind::imagenet ? 7 : 3;
        std::int64_t n = w0 * in_channels * k0 * k0 + 2 * w0;
        for (const auto& b : plan())
            for (const auto& c : b.convs) n += c.out * c.in * c.kernel * c.kernel + 2 * c.out;
        if (num_classes > 0) n += feature_dim() * num_classes + num_classes;
        return n;
    }

    /// Useful FLOPs (2 per multiply-add) of one forward pass of one h x w image through
    /// the convolutions and the classifier: kernel taps that fall on zero padding are not
    /// counted (at 64 px, a 3x3 convolution on a 2x2 map has only 4 of 9 taps inside), and
    /// batch norm, pooling and activations are not counted either.
    std::int64_t forward_flops(std::int64_t h, std::int64_t w) const {
        struct dim_t {
            std::int64_t out, taps;  // output size, sum over outputs of in-image kernel taps
        };
        auto dim = [](std::int64_t x, std::int64_t k, std::int64_t s, std::int64_t p) {
            const std::int64_t o = (x + 2 * p - k) / s + 1;
            std::int64_t taps = 0;
            for (std::int64_t i = 0; i < o; ++i)
                for (std::int64_t t = 0; t < k; ++t) {
                    const std::int64_t at = i * s - p + t;
                    taps += (at >= 0 && at < x) ? 1 : 0;
                }
            return dim_t{o, taps};
        };
        auto conv = [&](std::int64_t& ih, std::int64_t& iw, std::int64_t cin, std::int64_t cout, std::int64_t k,
                        std::int64_t s) {
            const auto dh = dim(ih, k, s, k / 2), dw = dim(iw, k, s, k / 2);
            ih = dh.out;
            iw = dw.out;
            return 2 * dh.taps * dw.taps * cin * cout;
        };
        const std::int64_t w0 = base_channels * width;
        const bool imagenet = stem == stem_kind::imagenet;
        std::int64_t flops = conv(h, w, in_channels, w0, imagenet ? 7 : 3, imagenet ? 2 : 1);
        if (imagenet) {
            h = (h + 2 - 3) / 2 + 1;
            w = (w + 2 - 3) / 2 + 1;
        }
        for (const auto& b : plan()) {
            std::int64_t bh = h, bw = w;
            for (const auto& c : b.convs) {
                if (c.name.find("downsample") != std::string::npos) {
                    std::int64_t sh = h, sw = w;
                    flops += conv(sh, sw, c.in, c.out, c.kernel, c.stride);
                } else {
                    flops += conv(bh, bw, c.in, c.out, c.kernel, c.stride);
                }
            }
            h = bh;
            w = bw;
        }
        if (num_classes > 0) flops += 2 * feature_dim() * num_classes;
        return flops;
    }

    void validate() const {
        blocks();
        check<value_error>(width == 1 || width == 2 || width == 4, "resnet: width multiplier ", width,
                           " is not 1, 2 or 4");
        check<value_error>(in_channels == 1 || in_channels == 3, "resnet: in_channels ", in_channels,
                           " is not 1 or 3");
        check<value_error>(base_channels > 0 && num_classes >= 0, "resnet: base_channels must be positive");
    }
};

template <class B>
class resnet {
public:
    using config = resnet_config;

    resnet(context<B>& ctx, const config& cfg, std::uint64_t seed) : cfg_(cfg) {
        cfg.validate();
        rng gen(derive_seed(seed, {0x7265736e6574ull}));
        const std::int64_t w0 = cfg.base_channels * cfg.width;
        const bool imagenet = cfg.stem == stem_kind::imagenet;
        conv1_ = std::make_unique<nn::conv2d<B>>(ctx, "conv1", cfg.in_channels, w0, imagenet ? 7 : 3, imagenet ? 2 : 1,
                                                 imagenet ? 3 : 1, false, gen);
        bn1_ = std::make_unique<nn::batch_norm<B>>(ctx, "bn1", w0, true);
        if (imagenet) pool_ = std::make_unique<ops::pool2d<B>>(ops::pool2d_params{ops::pool_kind::max, 3, 3, 2, 2, 1, 1});
        for (const auto& bp : cfg.plan()) blocks_.push_back(std::make_unique<block>(ctx, bp, cfg, gen));
        if (cfg.num_classes > 0)
            fc_ = std::make_unique<nn::linear<B>>(ctx, "fc", cfg.feature_dim(), cfg.num_classes, true, gen);
    }

    const config& cfg() const noexcept { return cfg_; }
    /// Width of the output: num_classes with a classifier, else the pooled features.
    std::int64_t output_dim() const { return fc_ ? cfg_.num_classes : cfg_.feature_dim(); }

    /// [N, in_channels, H, W] -> [N, output_dim()]. `training` selects batch statistics.
    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
        check(x.shape().rank() == 4 && x.shape()[1] == cfg_.in_channels, "resnet: input ", x.shape(), " must be [N, ",
              cfg_.in_channels, ", H, W]");
        input_ = &x;
        const tensor<B>* h = &bn1_->forward(ctx, conv1_->forward(ctx, x), training);
        if (pool_) {
            pool_->forward(ctx, *h, pooled_);
            h = &pooled_;
        }
        for (auto& b : blocks_) h = &b->forward(ctx, *h, training);
        gap_.forward(ctx, *h, features_);
        return fc_ ? fc_->forward(ctx, features_) : features_;
    }

    /// Gradients of every parameter from the gradient of the output (after forward with
    /// training = true). The input image gets no gradient.
    void backward(context<B>& ctx, const tensor<B>& dout) {
        check(input_ != nullptr, "resnet: backward called before forward");
        const tensor<B>* d = &dout;
        if (fc_) d = &fc_->backward(ctx, features_, dout);
        gap_.backward(ctx, *d, dlast_);
        d = &dlast_;
        for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) d = &(*it)->backward(ctx, *d);
        if (pool_) {
            pool_->backward(ctx, *d, dpooled_);
            d = &dpooled_;
        }
        const auto& dstem = bn1_->backward(ctx, stem_conv_out(), *d);
        conv1_->backward(ctx, *input_, dstem, false);
    }

    nn::state_list<B> state() {
        nn::state_list<B> s = conv1_->state();
        s.append(bn1_->state());
        for (auto& b : blocks_) s.append(b->state());
        if (fc_) s.append(fc_->state());
        return s;
    }

private:
    struct unit {
        std::unique_ptr<nn::conv2d<B>> conv;
        std::unique_ptr<nn::batch_norm<B>> bn;
    };

    /// conv-bn(-relu) units, an optional projection shortcut, add, ReLU.
    class block {
    public:
        block(context<B>& ctx, const typename config::block_plan& plan, const config& cfg, rng& gen) {
            const std::size_t main = plan.convs.size() - (plan.has_shortcut ? 1 : 0);
            for (std::size_t i = 0; i < plan.convs.size(); ++i) {
                const auto& c = plan.convs[i];
                const bool last = i + 1 == main, is_shortcut = i >= main;
                unit u{std::make_unique<nn::conv2d<B>>(ctx, c.name, c.in, c.out, c.kernel, c.stride, c.kernel / 2, false, gen),
                       std::make_unique<nn::batch_norm<B>>(ctx, c.bn, c.out, !last && !is_shortcut,
                                                           last && cfg.zero_init_residual)};
                (is_shortcut ? shortcut_ : units_.emplace_back()) = std::move(u);
            }
        }

        const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
            x_ = &x;
            const tensor<B>* h = &x;
            for (auto& u : units_) h = &u.bn->forward(ctx, u.conv->forward(ctx, *h), training);
            const tensor<B>& skip = shortcut_.conv ? shortcut_.bn->forward(ctx, shortcut_.conv->forward(ctx, x), training) : x;
            add_.forward_relu(ctx, *h, skip, out_);  // the join and its ReLU in one pass
            return out_;
        }

        const tensor<B>& backward(context<B>& ctx, const tensor<B>& dy) {
            relu_.backward(ctx, out_, dy, dsum_);  // the ReLU's mask from its output: same sign
            const tensor<B>* d = &dsum_;
            for (std::size_t i = units_.size(); i-- > 0;) {
                auto& u = units_[i];
                const tensor<B>& in = i == 0 ? *x_ : units_[i - 1].bn->output();
                d = &u.bn->backward(ctx, u.conv->output(), *d);
                d = &u.conv->backward(ctx, in, *d);
            }
            if (shortcut_.conv) {
                const auto& dbn = shortcut_.bn->backward(ctx, shortcut_.conv->output(), dsum_);
                add_.forward(ctx, *d, shortcut_.conv->backward(ctx, *x_, dbn), dx_);
            } else {
                add_.forward(ctx, *d, dsum_, dx_);
            }
            return dx_;
        }

        nn::state_list<B> state() {
            nn::state_list<B> s;
            for (auto& u : units_) {
                s.append(u.conv->state());
                s.append(u.bn->state());
            }
            if (shortcut_.conv) {
                s.append(shortcut_.conv->state());
                s.append(shortcut_.bn->state());
            }
            return s;
        }

    private:
        std::vector<unit> units_;
        unit shortcut_;
        ops::add<B> add_;
        ops::relu<B> relu_;
        const tensor<B>* x_ = nullptr;
        tensor<B> out_, dsum_, dx_;
    };

    const tensor<B>& stem_conv_out() const { return conv1_->output(); }

    config cfg_;
    std::unique_ptr<nn::conv2d<B>> conv1_;
    std::unique_ptr<nn::batch_norm<B>> bn1_;
    std::unique_ptr<ops::pool2d<B>> pool_;
    std::vector<std::unique_ptr<block>> blocks_;
    ops::global_avg_pool<B> gap_;
    std::unique_ptr<nn::linear<B>> fc_;
    const tensor<B>* input_ = nullptr;
    tensor<B> pooled_, features_, dlast_, dpooled_;
};

/// The architecture as checkpoint metadata (arch, width, base-channels, channels, stem,
/// image-size), so that any micle checkpoint says how to rebuild its model.
inline std::map<std::string, std::string> resnet_metadata(const resnet_config& c, std::int64_t image_size) {
    return {{"arch", "resnet" + std::to_string(c.depth)},
            {"width", std::to_string(c.width)},
            {"base-channels", std::to_string(c.base_channels)},
            {"channels", std::to_string(c.in_channels)},
            {"stem", c.stem == stem_kind::small ? "small" : "imagenet"},
            {"image-size", std::to_string(image_size)}};
}

/// The backbone a checkpoint's metadata describes; keys it lacks keep `defaults`' values.
inline resnet_config resnet_from_metadata(const std::map<std::string, std::string>& meta, resnet_config c = {}) {
    auto get = [&](const char* key) -> const std::string* {
        const auto it = meta.find(key);
        return it == meta.end() ? nullptr : &it->second;
    };
    auto number = [&](const char* key, std::int64_t fallback) -> std::int64_t {
        const auto* v = get(key);
        if (!v) return fallback;
        std::size_t used = 0;
        long long n = 0;
        try {
            n = std::stoll(*v, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        check<value_error>(used == v->size() && !v->empty(), "resnet: ", key, " '", *v, "' is not a number");
        return n;
    };
    if (const auto* arch = get("arch")) {
        check<value_error>(arch->rfind("resnet", 0) == 0 && arch->size() > 6, "resnet: arch must be resnet18/34/50/101/152, not '",
                           *arch, "'");
        const std::string digits = arch->substr(6);
        check<value_error>(digits.find_first_not_of("0123456789") == std::string::npos && digits.size() <= 3,
                           "resnet: arch must be resnet18/34/50/101/152, not '", *arch, "'");
        c.depth = std::stoi(digits);
    }
    c.width = int(number("width", c.width));
    c.base_channels = number("base-channels", c.base_channels);
    c.in_channels = number("channels", c.in_channels);
    if (const auto* stem = get("stem")) {
        check<value_error>(*stem == "imagenet" || *stem == "small", "resnet: stem must be imagenet or small, not '", *stem, "'");
        c.stem = *stem == "small" ? stem_kind::small : stem_kind::imagenet;
    }
    c.validate();
    return c;
}

/// How recipes and evaluation describe a ResNet (models/backbone.hpp): resnet18 with the
/// data's channels by default, the keys of resnet_metadata in checkpoints.
template <>
struct backbone_traits<resnet> {
    using config = resnet_config;
    static config defaults(std::int64_t in_channels) {
        config c;
        c.depth = 18;
        c.in_channels = in_channels;
        return c;
    }
    static config from_metadata(const metadata& m, const config& base) { return resnet_from_metadata(m, base); }
    static metadata to_metadata(const config& c) {
        auto m = resnet_metadata(c, 0);
        m.erase("image-size");
        return m;
    }
    static std::int64_t in_channels(const config& c) { return c.in_channels; }
};

}  // namespace micle::models
