#pragma once
// The contrastive learner: one SimCLR/MICLe training step on a batch of 2N views.
//
//   using learner = micle::contrastive_learner<micle::onednn, micle::models::resnet,
//                       micle::heads::projection, micle::contrastive::nt_xent, micle::optim::lars>;
//
// Switching the backend is the first template argument; everything else is configured at
// run time through `learner::config`.
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>

#include "micle/core/concepts.hpp"
#include "micle/core/error.hpp"
#include "micle/core/communicator.hpp"
#include "micle/dist/data_parallel.hpp"
#include "micle/nn/parameter.hpp"
#include "micle/optim/optimizer.hpp"

namespace micle::train {

/// The run-time configuration of a contrastive_learner. It depends on the policies' config
/// types only, not on the backend, so one config drives the same model on any backend.
template <class BackboneConfig, class HeadConfig, class LossConfig, class OptimizerConfig>
struct contrastive_learner_config {
    BackboneConfig backbone{};
    HeadConfig head{};
    LossConfig loss{};
    OptimizerConfig optimizer{};
    std::uint64_t seed = 0;  ///< initialisation of every parameter
};

template <class B, template <class> class BackboneT, template <class> class HeadT, template <class> class LossT,
          template <class> class OptimizerT>
    requires Backend<B> && Backbone<BackboneT<B>, B> && Head<HeadT<B>, B> && Loss<LossT<B>, B> &&
             Optimizer<OptimizerT<B>, B>
class contrastive_learner {
public:
    using backend = B;
    using backbone_type = BackboneT<B>;
    using head_type = HeadT<B>;
    using loss_type = LossT<B>;
    using optimizer_type = OptimizerT<B>;

    using config = contrastive_learner_config<typename backbone_type::config, typename head_type::config,
                                              typename loss_type::config, typename optimizer_type::config>;

    contrastive_learner(context<B>& ctx, const config& cfg)
        : ctx_(ctx),
          cfg_(cfg),
          backbone_(ctx, cfg.backbone, cfg.seed),
          head_(ctx, cfg.head, backbone_.output_dim(), cfg.seed),
          loss_(cfg.loss),
          optimizer_(cfg.optimizer, trainable()) {}

    /// One step: forward both views through backbone and head, the loss, backward, and
    /// the optimizer update at learning rate `lr`. `views` is [2N, C, H, W] with rows i and
    /// i + N two views of sample i; `groups` is empty or 2N ids (patients) whose other
    /// members are not used as negatives. Returns the loss before the update. A NaN or
    /// infinite loss throws micle::nonfinite_loss_error and leaves every parameter untouched.
    float step(const tensor<B>& views, std::span<const std::int64_t> groups, float lr) {
        const auto& h = backbone_.forward(ctx_, views, true);
        const auto& z = head_.forward(ctx_, h, true);
        const float loss = loss_.forward(ctx_, z, groups);
        check<nonfinite_loss_error>(std::isfinite(loss), "contrastive_learner: the loss is ",
                           std::isnan(loss) ? "NaN" : (loss > 0 ? "+inf" : "-inf"), " at step ", steps_,
                           "; parameters were not updated (lower the learning rate, check the input)");
        const auto& dz = loss_.backward(ctx_);
        const auto& dh = head_.backward(ctx_, dz);
        backbone_.backward(ctx_, dh);
        // The loss is the global batch's mean: each rank's gradient is its share, summed.
        if (buckets_) buckets_->all_reduce(ctx_, *comm_);
        optimizer_.step(ctx_, lr);
        ++steps_;
        return loss;
    }
    float step(const tensor<B>& views, float lr) { return step(views, {}, lr); }

    /// Backbone features of images in inference mode (running BN statistics).
    const tensor<B>& embed(const tensor<B>& images) { return backbone_.forward(ctx_, images, false); }

    /// One step on a batch of a pair strategy (contrastive::view_batch or any type with
    /// `groups`), its views already on the backend: what micle::train::fit calls.
    template <class Batch>
        requires requires(const Batch& b) { b.groups; }
    float step(const tensor<B>& views, const Batch& batch, float lr) {
        return step(views, std::span<const std::int64_t>(batch.groups), lr);
    }

    /// Data-parallel training over `comm`: from here on every rank calls step with its
    /// slice of each global batch (train::fit does), the loss sees the global batch's views
    /// as negatives, batch norm (with opt.global_batch_norm) the global batch's statistics,
    /// and the gradients are summed over the ranks before the update, so N ranks x B/N
    /// train what one process trains with B. Rank 0's model and optimizer state are copied
    /// to every rank now. Every rank must call it, with the same options.
    void distribute(dist::communicator& comm, dist::options opt = {}) {
        comm_ = &comm;
        if constexpr (requires { loss_.distribute(&comm); }) loss_.distribute(&comm);
        auto s = state();
        for (auto* bn : s.norms) bn->synchronize(opt.global_batch_norm ? &comm : nullptr);
        buckets_.reset();
        if (comm.size() > 1) {
            buckets_ = std::make_unique<dist::gradient_buckets<B>>(trainable(), opt.bucket_bytes);
            if (opt.overlap) buckets_->arm(ctx_, comm);  // each bucket's all-reduce starts during backward
        }
        dist::broadcast_state(ctx_, comm, s, optimizer_state());
    }
    /// The ranks this learner trains with (dist::self(): one process).
    dist::communicator& communicator() noexcept { return comm_ ? *comm_ : dist::self(); }
    /// The last step's gradient all-reduce: collectives and values (0 in one process).
    std::size_t gradient_buckets() const noexcept { return buckets_ ? buckets_->buckets() : 0; }
    /// The gradient all-reduce of the last step (nullptr in one process): buckets, values,
    /// how many started during backward, the wait after it.
    const dist::gradient_buckets<B>* gradient_sync() const noexcept { return buckets_.get(); }

    backbone_type& backbone() noexcept { return backbone_; }
    head_type& head() noexcept { return head_; }
    optimizer_type& optimizer() noexcept { return optimizer_; }
    const config& cfg() const noexcept { return cfg_; }
    std::int64_t steps_done() const noexcept { return steps_; }
    void set_steps_done(std::int64_t s) noexcept { steps_ = s; }

    /// Backbone then head state, with the names they are saved under.
    nn::state_list<B> state() {
        auto s = backbone_.state();
        s.append(head_.state());
        return s;
    }
    /// The optimizer's buffers under fixed checkpoint names (`optim.<kind>.<parameter>`).
    std::vector<optim::state_entry> optimizer_state() { return optim::prefixed("optim.", optimizer_.state()); }
    context<B>& ctx() noexcept { return ctx_; }

private:
    std::vector<nn::parameter<B>*> trainable() {
        auto s = backbone_.state();
        s.append(head_.state());
        return s.params;
    }

    context<B>& ctx_;
    config cfg_;
    backbone_type backbone_;
    head_type head_;
    loss_type loss_;
    optimizer_type optimizer_;
    std::int64_t steps_ = 0;
    dist::communicator* comm_ = nullptr;
    std::unique_ptr<dist::gradient_buckets<B>> buckets_;
};

}  // namespace micle::train

// The learners live in train/ (micle::train) and are also spelled micle::contrastive_learner,
// as in the design's examples.
namespace micle {
using train::contrastive_learner;
using train::contrastive_learner_config;
}  // namespace micle
