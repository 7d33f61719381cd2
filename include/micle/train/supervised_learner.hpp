#pragma once
// Supervised fine-tuning: a backbone, a linear classifier head (`fc`), softmax
// cross-entropy (multi-class) or sigmoid binary cross-entropy (multi-label), and separate
// optimizers for backbone and head so the head can learn at its own rate. With
// `freeze_backbone` the backbone runs in inference mode and is not updated (a linear probe
// on fixed features).
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "micle/core/concepts.hpp"
#include "micle/core/ops.hpp"
#include "micle/dist/data_parallel.hpp"
#include "micle/heads/linear.hpp"
#include "micle/nn/parameter.hpp"
#include "micle/optim/optimizer.hpp"

namespace micle::train {

enum class task_type : std::uint8_t { multiclass, multilabel };

template <class BackboneConfig, class OptimizerConfig>
struct supervised_learner_config {
    BackboneConfig backbone{};
    std::int64_t classes = 10;
    task_type task = task_type::multiclass;
    OptimizerConfig optimizer{};
    float head_lr_scale = 1.0f;    ///< head learning rate = lr * head_lr_scale
    bool freeze_backbone = false;  ///< linear probe
    bool feature_norm = false;     ///< batch norm before the classifier (heads::linear_config::feature_norm)
    std::uint64_t seed = 0;
};

template <class B, template <class> class BackboneT, template <class> class OptimizerT>
    requires Backend<B> && Backbone<BackboneT<B>, B> && Optimizer<OptimizerT<B>, B>
class supervised_learner {
public:
    using backend = B;
    using backbone_type = BackboneT<B>;
    using optimizer_type = OptimizerT<B>;
    using config = supervised_learner_config<typename backbone_type::config, typename optimizer_type::config>;

    supervised_learner(context<B>& ctx, const config& cfg)
        : ctx_(ctx),
          cfg_(cfg),
          backbone_(ctx, cfg.backbone, cfg.seed),
          head_(ctx, heads::linear_config{cfg.classes, "fc", cfg.feature_norm}, backbone_.output_dim(), cfg.seed),
          backbone_opt_(cfg.optimizer, backbone_.state().params),
          head_opt_(cfg.optimizer, head_.state().params) {}

    /// One step on images [N, C, H, W]; `labels` (multi-class, N ints) or `targets`
    /// (multi-label, N*K values in [0, 1]). Returns the loss before the update; a
    /// non-finite loss throws before anything changes.
    float step(const tensor<B>& images, std::span<const int> labels, std::span<const float> targets, float lr) {
        const bool train_backbone = !cfg_.freeze_backbone;
        const auto& features = backbone_.forward(ctx_, images, train_backbone);
        const auto& logits = head_.forward(ctx_, features, true);
        const float loss = loss_and_gradient(logits, labels, targets);
        const auto& dfeat = head_.backward(ctx_, dlogits_);
        if (train_backbone) backbone_.backward(ctx_, dfeat);
        if (buckets_) buckets_->all_reduce(ctx_, *comm_);
        head_opt_.step(ctx_, lr * cfg_.head_lr_scale);
        if (train_backbone) backbone_opt_.step(ctx_, lr);
        ++steps_;
        return loss;
    }

    /// One step on a labelled batch (data::labeled_batch or any type with `labels`,
    /// `targets` and `precomputed`), its pixels already on the backend: what
    /// micle::train::fit calls. A batch of precomputed features is a head-only step.
    template <class Batch>
        requires requires(const Batch& b) { b.labels; b.targets; bool(b.precomputed); }
    float step(const tensor<B>& x, const Batch& batch, float lr) {
        return batch.precomputed ? step_head(x, batch.labels, batch.targets, lr) : step(x, batch.labels, batch.targets, lr);
    }

    /// Backbone features of images in inference mode, for a linear probe that computes
    /// them once.
    const tensor<B>& features(const tensor<B>& images) { return backbone_.forward(ctx_, images, false); }
    /// The same, under the name the contrastive learner uses (the kNN monitor calls it).
    const tensor<B>& embed(const tensor<B>& images) { return features(images); }

    /// A head-only step on precomputed features [N, F] (linear probe).
    float step_head(const tensor<B>& features, std::span<const int> labels, std::span<const float> targets, float lr) {
        check<value_error>(!buckets_ || cfg_.freeze_backbone,
                           "supervised_learner: a head-only step of a data-parallel learner needs freeze_backbone");
        const auto& logits = head_.forward(ctx_, features, true);
        const float loss = loss_and_gradient(logits, labels, targets);
        head_.backward(ctx_, dlogits_);
        if (buckets_) buckets_->all_reduce(ctx_, *comm_);
        head_opt_.step(ctx_, lr * cfg_.head_lr_scale);
        ++steps_;
        return loss;
    }

    /// Class probabilities (softmax) or label probabilities (sigmoid), N x K, host memory.
    std::vector<float> predict(const tensor<B>& images) { return probabilities(features(images)); }

    /// Probabilities from precomputed features.
    std::vector<float> probabilities(const tensor<B>& features) {
        const auto logits = head_.forward(ctx_, features, false).to_host(ctx_);
        const auto k = cfg_.classes;
        std::vector<float> p(logits.size());
        for (std::size_t i = 0; i < logits.size(); i += std::size_t(k)) {
            if (cfg_.task == task_type::multiclass) {
                float mx = logits[i];
                for (std::int64_t c = 1; c < k; ++c) mx = std::max(mx, logits[i + std::size_t(c)]);
                double s = 0;
                for (std::int64_t c = 0; c < k; ++c) s += std::exp(double(logits[i + std::size_t(c)] - mx));
                for (std::int64_t c = 0; c < k; ++c)
                    p[i + std::size_t(c)] = float(std::exp(double(logits[i + std::size_t(c)] - mx)) / s);
            } else {
                for (std::int64_t c = 0; c < k; ++c) p[i + std::size_t(c)] = 1.0f / (1.0f + std::exp(-logits[i + std::size_t(c)]));
            }
        }
        return p;
    }

    /// Data-parallel training over `comm`: from here on every rank calls step with its
    /// slice of each global batch (train::fit does; slices may differ by one image), batch
    /// norm (with opt.global_batch_norm) uses the global batch's statistics, each rank's
    /// gradient is weighted by its share of the global batch and summed over the ranks, and
    /// step returns the global batch's loss: N ranks train what one process trains on the
    /// whole batch. Rank 0's model and optimizer state are copied to every rank now. Every
    /// rank must call it, with the same options.
    void distribute(dist::communicator& comm, dist::options opt = {}) {
        comm_ = &comm;
        auto s = state();
        for (auto* bn : s.norms) bn->synchronize(opt.global_batch_norm ? &comm : nullptr);
        buckets_.reset();
        if (comm.size() > 1) {  // what the optimizers update: the head, and the backbone unless frozen
            std::vector<nn::parameter<B>*> trainable;
            if (!cfg_.freeze_backbone) trainable = backbone_.state().params;
            for (auto* p : head_.state().params) trainable.push_back(p);
            buckets_ = std::make_unique<dist::gradient_buckets<B>>(trainable, opt.bucket_bytes);
            if (opt.overlap) buckets_->arm(ctx_, comm);  // each bucket's all-reduce starts during backward
        }
        dist::broadcast_state(ctx_, comm, s, optimizer_state());
    }
    /// The ranks this learner trains with (dist::self(): one process).
    dist::communicator& communicator() noexcept { return comm_ ? *comm_ : dist::self(); }

    backbone_type& backbone() noexcept { return backbone_; }
    heads::linear<B>& head() noexcept { return head_; }
    const config& cfg() const noexcept { return cfg_; }
    std::int64_t steps_done() const noexcept { return steps_; }
    void set_steps_done(std::int64_t s) noexcept { steps_ = s; }
    optimizer_type& backbone_optimizer() noexcept { return backbone_opt_; }
    optimizer_type& head_optimizer() noexcept { return head_opt_; }

    /// Backbone and head (`fc.`) state, named as a torchvision classifier's.
    nn::state_list<B> state() {
        auto s = backbone_.state();
        s.append(head_.state());
        return s;
    }
    /// Both optimizers' buffers under fixed checkpoint names (`optim.` for the backbone's,
    /// `head_optim.` for the head's).
    std::vector<optim::state_entry> optimizer_state() {
        auto s = optim::prefixed("optim.", backbone_opt_.state());
        for (auto& e : optim::prefixed("head_optim.", head_opt_.state())) s.push_back(std::move(e));
        return s;
    }
    context<B>& ctx() noexcept { return ctx_; }

private:
    float loss_and_gradient(const tensor<B>& logits, std::span<const int> labels, std::span<const float> targets) {
        float loss;
        if (cfg_.task == task_type::multiclass) {
            loss = ce_.forward(ctx_, logits, labels);
        } else {
            // A NaN target is a label the data leaves out (uncertain or not mentioned): masked.
            const bool masked = std::any_of(targets.begin(), targets.end(), [](float t) { return std::isnan(t); });
            if (masked) {
                clean_.assign(targets.begin(), targets.end());
                mask_.resize(clean_.size());
                for (std::size_t i = 0; i < clean_.size(); ++i) {
                    mask_[i] = std::isnan(clean_[i]) ? 0.0f : 1.0f;
                    if (std::isnan(clean_[i])) clean_[i] = 0.0f;
                }
                target_t_ = tensor<B>::from_host(ctx_, logits.shape(), clean_);
                mask_t_ = tensor<B>::from_host(ctx_, logits.shape(), mask_);
                loss = bce_.forward(ctx_, logits, target_t_, mask_t_);
            } else {
                target_t_ = tensor<B>::from_host(ctx_, logits.shape(), targets);
                loss = bce_.forward(ctx_, logits, target_t_);
            }
            kept_ = masked ? double(std::count(mask_.begin(), mask_.end(), 1.0f)) : double(targets.size());
        }
        if (comm_ && comm_->size() > 1) {
            // The global batch's mean loss: this rank's mean weighted by its share of what
            // the loss averages (images; multi-label: the label entries kept), summed over
            // the ranks (every rank then sees the same loss, so a non-finite one stops them all).
            const double n = cfg_.task == task_type::multiclass ? double(logits.shape()[0]) : kept_;
            double both[2] = {double(loss) * n, n};
            comm_->all_reduce_sum(std::span<double>(both, 2));
            loss = both[1] > 0 ? float(both[0] / both[1]) : 0.0f;
            share_ = both[1] > 0 ? float(n / both[1]) : 0.0f;
        }
        check<nonfinite_loss_error>(std::isfinite(loss), "supervised_learner: the loss is ",
                           std::isnan(loss) ? "NaN" : (loss > 0 ? "+inf" : "-inf"), " at step ", steps_,
                           "; parameters were not updated");
        if (cfg_.task == task_type::multiclass)
            ce_.backward(ctx_, dlogits_);
        else
            bce_.backward(ctx_, dlogits_);
        if (comm_ && comm_->size() > 1 && share_ != 1.0f) {  // d(global mean)/d(logits) = share x d(local mean)
            auto g = dlogits_.to_host(ctx_);
            for (auto& v : g) v *= share_;
            dlogits_.assign(ctx_, g);
        }
        return loss;
    }

    context<B>& ctx_;
    config cfg_;
    backbone_type backbone_;
    heads::linear<B> head_;
    optimizer_type backbone_opt_, head_opt_;
    ops::softmax_cross_entropy<B> ce_;
    ops::sigmoid_bce<B> bce_;
    tensor<B> dlogits_, target_t_, mask_t_;
    std::vector<float> clean_, mask_;  // a masked batch's targets (NaN as 0) and its 0/1 mask
    double kept_ = 0;                  // the label entries this rank's loss averages
    std::int64_t steps_ = 0;
    dist::communicator* comm_ = nullptr;
    std::unique_ptr<dist::gradient_buckets<B>> buckets_;
    float share_ = 1.0f;  // this rank's images / the global batch's
};

}  // namespace micle::train

// The learners live in train/ (micle::train) and are also spelled micle::supervised_learner,
// as in the design's examples.
namespace micle {
using train::supervised_learner;
using train::supervised_learner_config;
using train::task_type;
}  // namespace micle
