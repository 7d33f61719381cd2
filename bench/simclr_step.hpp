#pragma once
// The SimCLR training step that bench_step (oneDNN), bench_step_gpu (cuDNN), bench_dist
// (oneDNN over MPI ranks) and bench/pytorch_step.py all time: both views through a ResNet
// and a SimCLR v1 projection head (hidden = feature width, 128 out), NT-Xent at
// temperature 0.1, backward, SGD with momentum 0.9 and weight decay 1e-6.
#include <micle/micle.hpp>

#include <cstdint>
#include <vector>

#include "micle/contrastive/nt_xent.hpp"
#include "micle/heads/projection.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/contrastive_learner.hpp"

namespace micle::bench {

template <class B>
using simclr_step_learner =
    contrastive_learner<B, models::resnet, heads::projection, contrastive::nt_xent, optim::sgd>;

template <class B>
typename simclr_step_learner<B>::config simclr_step_config(int depth, models::stem_kind stem) {
    typename simclr_step_learner<B>::config cfg;
    cfg.backbone.depth = depth;
    cfg.backbone.stem = stem;
    cfg.optimizer = {0.9f, 1e-6f, false, false};
    cfg.seed = 1;
    return cfg;
}

/// The views of `pairs` samples, [2 pairs, 3, res, res] as host values (normal, seed 2).
inline std::vector<float> simclr_step_views(std::int64_t pairs, std::int64_t res) {
    rng gen(2);
    std::vector<float> pixels(static_cast<std::size_t>(2 * pairs * 3 * res * res));
    for (auto& p : pixels) p = gen.normal();
    return pixels;
}

}  // namespace micle::bench
