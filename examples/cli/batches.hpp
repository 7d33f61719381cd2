#pragma once
// Labelled batches for fine-tuning and evaluation: images of a dataset, augmented with
// randomness drawn from (seed, epoch, position), in a seeded per-epoch order.
#include <numeric>

#include "common.hpp"
#include "micle/data/augment.hpp"

namespace micle::cli {

struct labeled_batch {
    shape dims;
    std::vector<float> pixels;
    std::vector<int> labels;
    std::vector<float> targets;
    std::vector<std::int64_t> samples;
};

/// Batch `b` of `n` samples from `order`; the last batch may be shorter.
inline labeled_batch make_labeled_batch(const data::dataset& d, const std::vector<std::int64_t>& order, std::int64_t b,
                                        std::int64_t n, const data::augment_config& aug, std::int64_t channels,
                                        std::uint64_t seed, std::int64_t epoch) {
    const std::int64_t begin = b * n, end = std::min<std::int64_t>(begin + n, std::int64_t(order.size()));
    const std::int64_t count = end - begin, per = channels * aug.size * aug.size;
    labeled_batch out;
    out.dims = shape{count, channels, aug.size, aug.size};
    out.pixels.resize(std::size_t(count * per));
    for (std::int64_t k = 0; k < count; ++k) {
        const std::int64_t i = order[std::size_t(begin + k)];
        rng gen(derive_seed(seed, {std::uint64_t(epoch), std::uint64_t(begin + k), 0x6c61626cull}));
        const auto img = data::augment(data::to_channels(d.load(i), channels), aug, gen);
        std::copy(img.pixels.begin(), img.pixels.end(), out.pixels.begin() + k * per);
        if (d.task == data::task_kind::multiclass)
            out.labels.push_back(d.labels[std::size_t(i)]);
        else
            out.targets.insert(out.targets.end(), d.targets.begin() + i * d.num_classes,
                               d.targets.begin() + (i + 1) * d.num_classes);
        out.samples.push_back(i);
    }
    return out;
}

inline std::vector<std::int64_t> shuffled(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    rng gen(derive_seed(seed, {0x65706f6368ull, std::uint64_t(epoch)}));
    std::shuffle(order.begin(), order.end(), gen);
    return order;
}

}  // namespace micle::cli
