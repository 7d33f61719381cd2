#pragma once
// Patient-level splits, the leakage check, and simulated patient bags.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "micle/core/rng.hpp"
#include "micle/data/dataset.hpp"

namespace micle::data {

struct split_fractions {
    double train = 0.7, val = 0.1, test = 0.2;
};

/// Sample indices of each split.
struct split_indices {
    std::vector<std::int64_t> train, val, test;
};

namespace detail {
/// A patient's label for stratification: the most frequent class of its images
/// (multiclass), or the most frequent positive-label pattern's first label (multilabel).
inline int patient_stratum(const dataset& d, const std::vector<std::int64_t>& samples) {
    std::map<int, int> count;
    for (auto i : samples) {
        int key = 0;
        if (d.task == task_kind::multiclass) {
            key = d.labels[std::size_t(i)];
        } else {
            key = -1;
            for (std::int64_t k = 0; k < d.num_classes; ++k)
                if (d.targets[std::size_t(i * d.num_classes + k)] >= 0.5f) {
                    key = int(k);
                    break;
                }
        }
        ++count[key];
    }
    return std::max_element(count.begin(), count.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
}
}  // namespace detail

/// Splits by patient, so no patient's images are in two splits, stratified by each
/// patient's dominant label (each stratum is divided in the given fractions, rounding
/// so that every split of a large enough stratum gets patients). Seeded.
inline split_indices patient_split(const dataset& d, const split_fractions& f, std::uint64_t seed) {
    check<value_error>(f.train >= 0 && f.val >= 0 && f.test >= 0 && f.train + f.val + f.test > 0,
                       "patient_split: fractions must be non-negative and not all zero");
    std::map<std::int64_t, std::vector<std::int64_t>> by_patient;
    for (std::int64_t i = 0; i < d.size(); ++i) by_patient[d.patients[std::size_t(i)]].push_back(i);
    std::map<int, std::vector<std::int64_t>> strata;  // stratum -> patient ids
    for (const auto& [p, samples] : by_patient) strata[detail::patient_stratum(d, samples)].push_back(p);
    const double total = f.train + f.val + f.test;
    split_indices out;
    for (auto& [stratum, pats] : strata) {
        rng gen(derive_seed(seed, {0x73706c6974ull, std::uint64_t(stratum + 1)}));
        std::shuffle(pats.begin(), pats.end(), gen);
        const auto n = double(pats.size());
        const auto n_train = std::size_t(n * f.train / total + 0.5);
        const auto n_val = std::min(pats.size() - std::min(pats.size(), n_train), std::size_t(n * f.val / total + 0.5));
        for (std::size_t k = 0; k < pats.size(); ++k) {
            auto& dst = k < n_train ? out.train : (k < n_train + n_val ? out.val : out.test);
            const auto& s = by_patient[pats[k]];
            dst.insert(dst.end(), s.begin(), s.end());
        }
    }
    for (auto* v : {&out.train, &out.val, &out.test}) std::sort(v->begin(), v->end());
    return out;
}

/// The labelled subset of a label-efficiency experiment: a fraction of the *patients* of
/// each label stratum (at least one patient per stratum), all their images, seeded.
/// Returns sorted sample indices.
inline std::vector<std::int64_t> label_fraction(const dataset& d, double fraction, std::uint64_t seed) {
    check<value_error>(fraction > 0 && fraction <= 1, "label_fraction: fraction must be in (0, 1], got ", fraction);
    std::map<std::int64_t, std::vector<std::int64_t>> by_patient;
    for (std::int64_t i = 0; i < d.size(); ++i) by_patient[d.patients[std::size_t(i)]].push_back(i);
    std::map<int, std::vector<std::int64_t>> strata;
    for (const auto& [p, samples] : by_patient) strata[detail::patient_stratum(d, samples)].push_back(p);
    std::vector<std::int64_t> out;
    for (auto& [stratum, pats] : strata) {
        rng gen(derive_seed(seed, {0x6672616374ull, std::uint64_t(stratum + 1)}));
        std::shuffle(pats.begin(), pats.end(), gen);
        const auto take = std::max<std::size_t>(1, std::size_t(std::llround(fraction * double(pats.size()))));
        for (std::size_t k = 0; k < std::min(take, pats.size()); ++k) {
            const auto& s = by_patient[pats[k]];
            out.insert(out.end(), s.begin(), s.end());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Patients that have samples in both index lists (a leak between splits).
inline std::vector<std::int64_t> leaked_patients(const dataset& d, std::span<const std::int64_t> a,
                                                 std::span<const std::int64_t> b) {
    std::set<std::int64_t> pa, both;
    for (auto i : a) pa.insert(d.patients[std::size_t(i)]);
    for (auto i : b)
        if (pa.count(d.patients[std::size_t(i)])) both.insert(d.patients[std::size_t(i)]);
    return {both.begin(), both.end()};
}

/// A seeded random subset of `n` samples of `d`, kept in dataset order (all of `d` when
/// n >= its size).
inline dataset random_subset(const dataset& d, std::int64_t n, std::uint64_t seed) {
    if (n >= d.size()) return d;
    std::vector<std::int64_t> order(static_cast<std::size_t>(d.size()));
    std::iota(order.begin(), order.end(), 0);
    rng gen(derive_seed(seed, {0x737562736574ull}));
    std::shuffle(order.begin(), order.end(), gen);
    order.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, n)));
    std::sort(order.begin(), order.end());
    return d.subset(order);
}

/// SAME-CLASS BAGS, a simulation for datasets without patient ids: groups images of the
/// same class into "patients" of min_size..max_size images (uniform sizes, seeded). MICLe's
/// positives are then two images of one class: supervised contrastive learning, with the
/// labels given to the pretraining - not what MICLe measures on patients. The label-free
/// simulation is simulate_acquisitions (data/acquisition.hpp). `simulated_patients` and
/// `simulated_bags` ("same-class") say what the result is.
inline void simulate_bags(dataset& d, std::uint64_t seed, int min_size = 1, int max_size = 4) {
    check<value_error>(min_size >= 1 && max_size >= min_size, "simulate_bags: need 1 <= min_size <= max_size");
    check<value_error>(d.task == task_kind::multiclass, "simulate_bags: needs a multiclass dataset");
    std::map<int, std::vector<std::int64_t>> by_class;
    for (std::int64_t i = 0; i < d.size(); ++i) by_class[d.labels[std::size_t(i)]].push_back(i);
    rng gen(derive_seed(seed, {0x62616773ull}));
    std::int64_t next = 0;
    for (auto& [label, idx] : by_class) {
        std::shuffle(idx.begin(), idx.end(), gen);
        for (std::size_t k = 0; k < idx.size();) {
            const auto size = std::size_t(min_size) + std::size_t(gen.below(std::uint64_t(max_size - min_size + 1)));
            for (std::size_t j = k; j < std::min(idx.size(), k + size); ++j) d.patients[std::size_t(idx[j])] = next;
            k += size;
            ++next;
        }
    }
    d.simulated_patients = true;
    d.simulated_bags = "same-class";
}

}  // namespace micle::data
