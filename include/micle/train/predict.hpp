#pragma once
// A learner run over every sample of a labelled source, in its order and in inference
// mode: backbone features (embed_all: kNN, linear probes, `micle embed`) and class or
// label probabilities (predict_all: validation, `micle evaluate`).
#include <cstdint>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/loader.hpp"

namespace micle::train {

/// The backbone features ([N, F], host) of every sample of `source` in its order
/// (data::labeled_images with shuffle off), computed in inference mode.
template <class Learner>
std::vector<float> embed_all(Learner& learner, const data::labeled_images& source, std::int64_t batch, int workers,
                             std::int64_t* dim = nullptr) {
    using B = typename Learner::backend;
    data::prefetch_loader<data::labeled_batch> loader([&](std::int64_t b) { return source.make_batch(0, b, batch); },
                                                      source.batches(batch), workers, 2 * workers);
    std::vector<float> out;
    while (auto x = loader.next()) {
        const auto& f = learner.embed(tensor<B>::from_host(learner.ctx(), x->dims, x->pixels));
        if (dim) *dim = f.shape()[1];
        const auto h = f.to_host(learner.ctx());
        out.insert(out.end(), h.begin(), h.end());
    }
    return out;
}

/// Class (or label) probabilities [N, K] of a supervised learner on every sample of `source`.
template <class Learner>
std::vector<float> predict_all(Learner& learner, const data::labeled_images& source, std::int64_t batch, int workers) {
    using B = typename Learner::backend;
    data::prefetch_loader<data::labeled_batch> loader([&](std::int64_t b) { return source.make_batch(0, b, batch); },
                                                      source.batches(batch), workers, 2 * workers);
    std::vector<float> out;
    while (auto x = loader.next()) {
        const auto p = learner.predict(tensor<B>::from_host(learner.ctx(), x->dims, x->pixels));
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

}  // namespace micle::train
