#pragma once
// The contrastive loss policy: NT-Xent on L2-normalised projections, optionally masking
// same-patient negatives (MICLe's bags).
#include <span>

#include "micle/core/ops.hpp"

namespace micle::contrastive {

struct nt_xent_config {
    float temperature = 0.1f;
    /// Views of the same group (patient) other than the positive are not used as negatives.
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
        return op_.forward(ctx, zn_, cfg_.mask_same_group ? groups : std::span<const std::int64_t>{});
    }
    /// Gradient of the loss with respect to the unnormalised projections.
    const tensor<B>& backward(context<B>& ctx) {
        op_.backward(ctx, dzn_);
        norm_.backward(ctx, dzn_, dz_);
        return dz_;
    }

private:
    config cfg_;
    ops::l2_normalize<B> norm_;
    ops::nt_xent<B> op_;
    tensor<B> zn_, dzn_, dz_;
};

}  // namespace micle::contrastive
