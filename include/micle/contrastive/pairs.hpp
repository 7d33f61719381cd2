#pragma once
// Positive-pair strategies: how a batch of 2N views is made from a dataset.
//
//   augmented_views  SimCLR: two augmentations of one image.
//   multi_instance   MICLe: the dataset's images are grouped into patient bags; a batch
//                    holds N bags, and each contributes two crops from two *different*
//                    randomly chosen images of the bag (a bag of one image falls back
//                    to two augmentations of it).
//
// Rows i and i + N of a batch are a positive pair, and both carry the group id (patient)
// the loss uses to mask same-patient negatives. Everything random is a function of
// (seed, epoch, position in the epoch, view), so a batch does not depend on which thread
// makes it or in what order. Each image is decoded once per batch (data/views.hpp): both
// SimCLR views come from one decode, MICLe's two images are decoded once each.
#include <algorithm>
#include <map>
#include <numeric>
#include <span>
#include <vector>

#include "micle/core/concepts.hpp"
#include "micle/core/rng.hpp"
#include "micle/core/shape.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/views.hpp"

namespace micle::contrastive {

/// A batch of views on the host, ready for tensor<B>::from_host.
struct view_batch {
    shape dims;                        ///< [2N, C, H, W]
    std::vector<float> pixels;         ///< plain NCHW
    std::vector<std::int64_t> groups;  ///< 2N group (patient) ids
    std::vector<std::int64_t> samples; ///< 2N dataset indices the views came from
};

namespace detail {
class pair_strategy_base {
public:
    pair_strategy_base(const data::dataset& d, data::augment_config aug, std::int64_t channels, std::uint64_t seed)
        : data_(&d), aug_(std::move(aug)), channels_(channels), seed_(seed) {
        check<value_error>(channels == 1 || channels == 3, "pair strategy: channels must be 1 or 3, got ", channels);
    }
    const data::augment_config& augmentation() const noexcept { return aug_; }

protected:
    /// Augmented views of sample `i` from one decode, one per stream, written to dst[k]
    /// (C * size * size floats each).
    void views(std::int64_t i, std::span<const std::uint64_t> streams, std::span<float* const> dst) const {
        data::make_views(*data_, i, streams, aug_, channels_, dst);
    }
    view_batch allocate(std::int64_t n) const {
        view_batch b;
        b.dims = shape{2 * n, channels_, aug_.size, aug_.size};
        b.pixels.resize(std::size_t(b.dims.numel()));
        b.groups.resize(std::size_t(2 * n));
        b.samples.resize(std::size_t(2 * n));
        return b;
    }
    std::int64_t per_view() const { return channels_ * aug_.size * aug_.size; }
    /// That batch `b` of `n` (of `units` per epoch) exists and [first, first + count) is in it.
    static void check_slice(const char* who, const char* unit, const char* units_name, std::int64_t units, std::int64_t b,
                            std::int64_t n, std::int64_t first, std::int64_t count) {
        check<value_error>(n > 0 && (b + 1) * n <= units, who, ": batch ", b, " of ", n, " ", unit, " is beyond the ", units, " ",
                           units_name, " of an epoch");
        check<value_error>(first >= 0 && count > 0 && first + count <= n, who, ": ", unit, " [", first, ", ", first + count,
                           ") are not in a batch of ", n);
    }
    std::vector<std::int64_t> epoch_order(std::int64_t units, std::int64_t epoch) const {
        std::vector<std::int64_t> order(static_cast<std::size_t>(units));
        std::iota(order.begin(), order.end(), 0);
        rng gen(derive_seed(seed_, {0x6f72646572ull, std::uint64_t(epoch)}));
        std::shuffle(order.begin(), order.end(), gen);
        return order;
    }
    std::uint64_t stream(std::int64_t epoch, std::int64_t position, int view) const {
        return derive_seed(seed_, {std::uint64_t(epoch), std::uint64_t(position), std::uint64_t(view)});
    }

    const data::dataset* data_;
    data::augment_config aug_;
    std::int64_t channels_;
    std::uint64_t seed_;
};
}  // namespace detail

class augmented_views : public detail::pair_strategy_base {
public:
    using pair_strategy_base::pair_strategy_base;

    /// Samples per epoch; an epoch has units() / n full batches (the remainder is dropped).
    std::int64_t units() const { return data_->size(); }
    /// Full batches of `n` pairs per epoch.
    std::int64_t batches(std::int64_t n) const { return units() / n; }

    /// Batch `b` of epoch `epoch` with `n` pairs.
    view_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n) const { return make_batch(epoch, b, n, 0, n); }
    /// Pairs [first, first + count) of that batch: a data-parallel rank's slice, the same
    /// views whatever the number of ranks.
    view_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n, std::int64_t first, std::int64_t count) const {
        check_slice("augmented_views", "pairs", "samples", units(), b, n, first, count);
        const auto order = epoch_order(units(), epoch);
        view_batch out = allocate(count);
        for (std::int64_t k = 0; k < count; ++k) {
            const std::int64_t pos = b * n + first + k, i = order[std::size_t(pos)];
            const std::uint64_t streams[2] = {stream(epoch, pos, 0), stream(epoch, pos, 1)};
            float* const dst[2] = {out.pixels.data() + k * per_view(), out.pixels.data() + (k + count) * per_view()};
            views(i, streams, dst);
            for (int v = 0; v < 2; ++v) {
                const std::int64_t row = k + v * count;
                out.groups[std::size_t(row)] = data_->patients[std::size_t(i)];
                out.samples[std::size_t(row)] = i;
            }
        }
        return out;
    }
};

/// What makes a MICLe bag: a patient's images (every study), or one study's (the paper's
/// frontal and lateral views of one visit; the dataset must have study ids).
enum class bag_by : std::uint8_t { patient, study };

class multi_instance : public detail::pair_strategy_base {
public:
    multi_instance(const data::dataset& d, data::augment_config aug, std::int64_t channels, std::uint64_t seed,
                   bag_by by = bag_by::patient)
        : pair_strategy_base(d, std::move(aug), channels, seed) {
        check<value_error>(by == bag_by::patient || !d.studies.empty(), "multi_instance: ", d.source,
                           " has no study ids, so bags can only be patients (--bag patient)");
        const auto& key = by == bag_by::patient ? d.patients : d.studies;
        std::map<std::int64_t, std::vector<std::int64_t>> bags;
        for (std::int64_t i = 0; i < d.size(); ++i) bags[key[std::size_t(i)]].push_back(i);
        for (auto& [patient, samples] : bags) {
            bag_ids_.push_back(patient);
            bags_.push_back(std::move(samples));
        }
    }

    /// Bags per epoch; an epoch has units() / n full batches.
    std::int64_t units() const { return std::int64_t(bags_.size()); }
    /// Full batches of `n` pairs per epoch.
    std::int64_t batches(std::int64_t n) const { return units() / n; }
    const std::vector<std::vector<std::int64_t>>& bags() const noexcept { return bags_; }

    view_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n) const { return make_batch(epoch, b, n, 0, n); }
    /// Bags [first, first + count) of that batch (a data-parallel rank's slice).
    view_batch make_batch(std::int64_t epoch, std::int64_t b, std::int64_t n, std::int64_t first, std::int64_t count) const {
        check_slice("multi_instance", "bags", "bags", units(), b, n, first, count);
        const auto order = epoch_order(units(), epoch);
        view_batch out = allocate(count);
        for (std::int64_t k = 0; k < count; ++k) {
            const std::int64_t pos = b * n + first + k;
            const auto& bag = bags_[std::size_t(order[std::size_t(pos)])];
            std::int64_t first = bag[0], second = bag[0];
            if (bag.size() >= 2) {  // two distinct images of the bag
                rng pick(stream(epoch, pos, 2));
                const auto a = pick.below(bag.size()), c = pick.below(bag.size() - 1);
                first = bag[a];
                second = bag[c >= a ? c + 1 : c];
            }
            const std::int64_t chosen[2] = {first, second};
            const std::uint64_t streams[2] = {stream(epoch, pos, 0), stream(epoch, pos, 1)};
            float* const dst[2] = {out.pixels.data() + k * per_view(), out.pixels.data() + (k + count) * per_view()};
            if (first == second) {  // a bag of one image: two augmentations of one decode
                views(first, streams, dst);
            } else {
                for (int v = 0; v < 2; ++v) views(chosen[v], std::span(streams + v, 1), std::span(dst + v, 1));
            }
            for (int v = 0; v < 2; ++v) {
                const std::int64_t row = k + v * count;
                out.groups[std::size_t(row)] = data_->patients[std::size_t(chosen[v])];  // the patient, also for study bags
                out.samples[std::size_t(row)] = chosen[v];
            }
        }
        return out;
    }

private:
    std::vector<std::int64_t> bag_ids_;
    std::vector<std::vector<std::int64_t>> bags_;
};

static_assert(PairStrategy<augmented_views> && PairStrategy<multi_instance>);

}  // namespace micle::contrastive
