#pragma once
// Small SimCLR learners shared by the learner tests of every backend.
#include <vector>

#include "micle/contrastive/nt_xent.hpp"
#include "micle/heads/linear.hpp"
#include "micle/heads/projection.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/contrastive_learner.hpp"
#include "testing.hpp"

namespace micle::testing {

template <class B>
using simclr_sgd = contrastive_learner<B, models::resnet, heads::projection, contrastive::nt_xent, optim::sgd>;
template <class B>
using simclr_lars = contrastive_learner<B, models::resnet, heads::projection, contrastive::nt_xent, optim::lars>;

/// A ResNet-18 with 4 base channels and the small stem, a 32-16 head, temperature 0.5.
template <class L>
typename L::config tiny_config() {
    typename L::config cfg;
    cfg.backbone.depth = 18;
    cfg.backbone.base_channels = 4;
    cfg.backbone.stem = models::stem_kind::small;
    cfg.head.hidden = 32;
    cfg.head.out = 16;
    cfg.loss.temperature = 0.5f;
    cfg.seed = 3;
    return cfg;
}

/// 6 samples x 2 views of 3x8x8: the second view is the first plus noise.
inline std::vector<float> noisy_view_pairs() {
    auto first = random_values(6 * 3 * 8 * 8, 1);
    const auto noise = random_values(first.size(), 2, -0.2f, 0.2f);
    std::vector<float> views(first);
    for (std::size_t i = 0; i < first.size(); ++i) views.push_back(first[i] + noise[i]);
    return views;
}

/// The losses of `steps` LARS steps of the tiny SimCLR learner on noisy_view_pairs(), on
/// a context of backend B made from `options` (fp32 or mixed precision).
template <class B, class Options>
std::vector<float> fixed_batch_losses(const Options& options, int steps = 26) {
    using L = simclr_lars<B>;
    context<B> ctx(options);
    L learner(ctx, tiny_config<L>());
    const auto x = tensor<B>::from_host(ctx, {12, 3, 8, 8}, noisy_view_pairs());
    std::vector<float> losses;
    for (int s = 0; s < steps; ++s) losses.push_back(learner.step(x, 1.0f));
    return losses;
}

/// That a mixed-precision loss curve (fixed_batch_losses) tracks the fp32 one: the first
/// loss (the same weights, inputs rounded to bf16) within 2% of fp32's, the loss more than
/// halved, and each of the last 5 steps, where both have converged, within 3% of fp32's
/// loss at the same step. In between, LARS at lr 1 makes both curves swing by up to 30%
/// at different steps. Measured on the oneDNN backend, 26 steps (2.17 -> 0.66): the first
/// loss 0.9% apart; the last 5 steps at most 1.5% apart with AMX and 1.8% with
/// AVX512-BF16 alone (DNNL_MAX_CPU_ISA=AVX512_CORE_BF16).
inline void check_tracks_fp32(const std::vector<float>& mixed, const std::vector<float>& full) {
    REQUIRE(mixed.size() == full.size());
    REQUIRE(full.size() >= 10);
    MESSAGE("bf16: loss " << mixed.front() << " -> " << mixed.back() << "; fp32: " << full.front() << " -> " << full.back());
    CHECK(mixed.front() == doctest::Approx(full.front()).epsilon(0.02));
    CHECK(mixed.back() < 0.5f * mixed.front());
    for (std::size_t s = full.size() - 5; s < full.size(); ++s) {
        CAPTURE(s);
        CHECK(mixed[s] == doctest::Approx(full[s]).epsilon(0.03));
    }
}

}  // namespace micle::testing
