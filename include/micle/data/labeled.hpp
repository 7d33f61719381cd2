#pragma once
// Labelled batches for fine-tuning, validation and evaluation: a dataset's images,
// augmented with randomness drawn from (seed, epoch, position), in a seeded per-epoch
// order (or in dataset order for evaluation). `labeled_images` is a batch source like the
// pair strategies (contrastive/pairs.hpp): units(), batches(n), make_batch(epoch, b, n),
// so micle::train::fit drives either.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "micle/core/concepts.hpp"
#include "micle/core/error.hpp"
#include "micle/core/rng.hpp"
#include "micle/core/shape.hpp"
#include "micle/data/augment.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/views.hpp"

namespace micle::data {

struct labeled_batch {
    shape dims;                        ///< [N, C, H, W], or [N, F] when `precomputed`
    std::vector<float> pixels;         ///< plain NCHW (or N x F features)
    std::vector<int> labels;           ///< multi-class: N class indices
    std::vector<float> targets;        ///< multi-label: N x K values
    std::vector<std::int64_t> samples; ///< dataset indices
    bool precomputed = false;          ///< `pixels` are backbone features (a linear probe)
};

/// A seeded permutation of 0..n-1 for `epoch`.
inline std::vector<std::int64_t> shuffled(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    rng gen(derive_seed(seed, {0x65706f6368ull, std::uint64_t(epoch)}));
    std::shuffle(order.begin(), order.end(), gen);
    return order;
}

namespace detail {
inline void append_labels(const dataset& d, std::int64_t i, labeled_batch& out) {
    if (d.task == task_kind::multiclass)
        out.labels.push_back(d.labels[std::size_t(i)]);
    else
        out.targets.insert(out.targets.end(), d.targets.begin() + i * d.num_classes, d.targets.begin() + (i + 1) * d.num_classes);
    out.samples.push_back(i);
}
}  // namespace detail

/// The [begin, end) positions in the epoch order of `units` samples that batch `b` of `n`
/// holds (the last batch may be shorter), or its part [first, first + count) when a rank
/// of a data-parallel run takes a slice of it (count < 0: to the end of the batch).
inline std::pair<std::int64_t, std::int64_t> batch_span(std::int64_t units, std::int64_t b, std::int64_t n,
                                                        std::int64_t first = 0, std::int64_t count = -1) {
    const std::int64_t begin = b * n, end = std::min<std::int64_t>(begin + n, units);
    check<value_error>(n > 0 && begin < end, "batch ", b, " of ", n, " is beyond the ", units, " samples");
    if (count < 0) count = end - begin - first;
    check<value_error>(first >= 0 && count >= 1 && begin + first + count <= end, "samples [", first, ", ", first + count,
                       ") of batch ", b, " (", end - begin, " samples)");
    return {begin + first, begin + first + count};
}

/// Samples [first, first + count) of batch `b` of `n` from `order` (all of it by default;
/// the last batch may be shorter), each image converted to `channels` and augmented with
/// its own generator, drawn from its position in the epoch: a rank's slice of a batch
/// holds exactly the images one process would make for those positions.
inline labeled_batch make_labeled_batch(const dataset& d, std::span<const std::int64_t> order, std::int64_t b, std::int64_t n,
                                        const augment_config& aug, std::int64_t channels, std::uint64_t seed,
                                        std::int64_t epoch, std::int64_t first = 0, std::int64_t count = -1) {
    const auto [begin, end] = batch_span(std::int64_t(order.size()), b, n, first, count);
    const std::int64_t per = channels * aug.size * aug.size;
    labeled_batch out;
    out.dims = shape{end - begin, channels, aug.size, aug.size};
    out.pixels.resize(std::size_t((end - begin) * per));
    for (std::int64_t k = 0; k < end - begin; ++k) {
        const std::int64_t i = order[std::size_t(begin + k)];
        const std::uint64_t stream = derive_seed(seed, {std::uint64_t(epoch), std::uint64_t(begin + k), 0x6c61626cull});
        float* const dst = out.pixels.data() + k * per;
        make_views(d, i, std::span(&stream, 1), aug, channels, std::span(&dst, 1));
        detail::append_labels(d, i, out);
    }
    return out;
}

/// The labelled images of a dataset as a batch source: every sample once per epoch, in a
/// seeded order per epoch (`shuffle`) or in dataset order, the last batch shorter.
class labeled_images {
public:
    labeled_images(dataset d, augment_config aug, std::int64_t channels, std::uint64_t seed, bool shuffle = true)
        : data_(std::make_shared<const dataset>(std::move(d))), aug_(aug), channels_(channels), seed_(seed), shuffle_(shuffle) {
        check<value_error>(data_->size() > 0, "labeled_images: the dataset ", data_->source, " is empty");
    }
    std::int64_t units() const { return data_->size(); }
    std::int64_t batches(std::int64_t n) const { return (units() + n - 1) / n; }
    labeled_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n) const { return make_batch(epoch, b, n, 0, -1); }
    /// Samples [first, first + count) of the batch: a data-parallel rank's slice.
    labeled_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n, std::int64_t first, std::int64_t count) const {
        std::vector<std::int64_t> order;
        if (shuffle_) {
            order = shuffled(units(), seed_, epoch);
        } else {
            order.resize(std::size_t(units()));
            std::iota(order.begin(), order.end(), 0);
        }
        return make_labeled_batch(*data_, order, b, n, aug_, channels_, seed_, epoch, first, count);
    }
    const dataset& data() const noexcept { return *data_; }
    const augment_config& augmentation() const noexcept { return aug_; }
    std::int64_t channels() const noexcept { return channels_; }

private:
    std::shared_ptr<const dataset> data_;
    augment_config aug_;
    std::int64_t channels_;
    std::uint64_t seed_;
    bool shuffle_;
};

/// Precomputed features [N, F] of a dataset's samples with their labels, as a batch
/// source for a linear probe (batches are `precomputed`, in a seeded order per epoch).
class labeled_features {
public:
    labeled_features(const dataset& d, std::vector<float> features, std::int64_t dim, std::uint64_t seed)
        : data_(std::make_shared<const dataset>(d)), features_(std::move(features)), dim_(dim), seed_(seed) {
        check<value_error>(dim > 0 && features_.size() == std::size_t(d.size() * dim), "labeled_features: ",
                           features_.size(), " values for ", d.size(), " samples of ", dim, " features");
    }
    std::int64_t units() const { return data_->size(); }
    std::int64_t batches(std::int64_t n) const { return (units() + n - 1) / n; }
    labeled_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n) const { return make_batch(epoch, b, n, 0, -1); }
    /// Samples [first, first + count) of the batch: a data-parallel rank's slice.
    labeled_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n, std::int64_t first, std::int64_t count) const {
        const auto order = shuffled(units(), seed_, epoch);
        const auto [begin, end] = batch_span(units(), b, n, first, count);
        labeled_batch out;
        out.precomputed = true;
        out.dims = shape{end - begin, dim_};
        out.pixels.resize(std::size_t((end - begin) * dim_));
        for (std::int64_t k = begin; k < end; ++k) {
            const auto i = order[std::size_t(k)];
            std::copy_n(features_.begin() + i * dim_, dim_, out.pixels.begin() + (k - begin) * dim_);
            detail::append_labels(*data_, i, out);
        }
        return out;
    }

private:
    std::shared_ptr<const dataset> data_;
    std::vector<float> features_;
    std::int64_t dim_;
    std::uint64_t seed_;
};

static_assert(BatchSource<labeled_images> && BatchSource<labeled_features>);

}  // namespace micle::data
