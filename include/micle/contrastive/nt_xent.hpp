#pragma once
// The contrastive loss policy: NT-Xent on L2-normalised projections, optionally masking
// same-patient negatives (MICLe's bags). Distributed over a communicator, every rank's
// anchors see the global batch's 2N views as negatives (gather_rows), and the
// gradient of every rank's share reaches the rows' owners.
#include <span>
#include <vector>

#include "micle/core/ops.hpp"
#include "micle/contrastive/gather.hpp"
#include "micle/core/communicator.hpp"

namespace micle::contrastive {

struct nt_xent_config {
    float temperature = ops::nt_xent_params{}.temperature;  ///< 0.1, SimCLR's (the op's default)
    /// Views of the same group (patient) other than the positive are not used as negatives
    /// (the recipes set it from the method, train/methods.hpp).
    bool mask_same_group = true;
};

template <class B>
class nt_xent {
public:
    using config = nt_xent_config;

    explicit nt_xent(const config& cfg = {}) : cfg_(cfg), op_(ops::nt_xent_params{cfg.temperature}) {}
    const config& cfg() const noexcept { return cfg_; }

    /// z: [2N, D] projections of two views of N samples (view i and view i+N are a
    /// positive pair); groups: empty, or one id per row.
    float forward(context<B>& ctx, const tensor<B>& z, std::span<const std::int64_t> groups = {}) {
        norm_.forward(ctx, z, zn_);
        const auto g = cfg_.mask_same_group ? groups : std::span<const std::int64_t>{};
        if (!distributed()) return op_.forward(ctx, zn_, g);
        // This rank's 2n views are rows [2n r, 2n (r + 1)) of the gathered [2n R, D]; its
        // share of the global mean is summed over the ranks.
        gather_.forward(ctx, *comm_, zn_, all_);
        const std::int64_t m = zn_.shape()[0];
        all_groups_ = g.empty() ? std::vector<std::int64_t>{} : gather_ids(*comm_, g);
        const float share = op_.forward(ctx, all_, all_groups_, ops::nt_xent_anchors{m * comm_->rank(), m, m * comm_->size()});
        return float(comm_->sum(share));
    }
    /// Gradient of the loss with respect to the unnormalised projections.
    const tensor<B>& backward(context<B>& ctx) {
        if (distributed()) {
            op_.backward(ctx, dall_);
            gather_.backward(ctx, *comm_, dall_, dzn_);
        } else {
            op_.backward(ctx, dzn_);
        }
        norm_.backward(ctx, dzn_, dz_);
        return dz_;
    }

    /// Computes the loss over the global batch of every rank of `comm` (nullptr: this
    /// process's batch only). Every rank calls forward and backward in step.
    void distribute(dist::communicator* comm) { comm_ = comm; }

private:
    config cfg_;
    ops::l2_normalize<B> norm_;
    bool distributed() const { return comm_ && comm_->size() > 1; }

    ops::nt_xent<B> op_;
    tensor<B> zn_, dzn_, dz_;
    dist::communicator* comm_ = nullptr;
    gather_rows<B> gather_;
    tensor<B> all_, dall_;
    std::vector<std::int64_t> all_groups_;
};

}  // namespace micle::contrastive
