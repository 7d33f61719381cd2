#pragma once
// A pre-flight look at a dataset (`micle check`): every image decoded once, the ones that
// cannot be read listed with their names (manifest line and path), and a summary of the
// classes and patient bags.
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "micle/data/dataset.hpp"

namespace micle::data {

/// Decodes every sample of `d` on `workers` threads; "name: error" for each that fails,
/// in dataset order.
inline std::vector<std::string> unreadable_samples(const dataset& d, int workers = 2) {
    check<value_error>(workers >= 1, "unreadable_samples: workers must be >= 1");
    std::vector<std::string> errors(static_cast<std::size_t>(d.size()));
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w)
        pool.emplace_back([&, w] {
            for (std::int64_t i = w; i < d.size(); i += workers) {
                try {
                    d.load(i);
                } catch (const std::exception& e) {
                    const std::string what = e.what(), &name = d.names[std::size_t(i)];
                    errors[std::size_t(i)] = what.find(name) == std::string::npos ? name + ": " + what : what;
                }
            }
        });
    for (auto& t : pool) t.join();
    std::vector<std::string> out;
    for (auto& e : errors)
        if (!e.empty()) out.push_back(std::move(e));
    return out;
}

struct dataset_summary {
    std::int64_t images = 0, patients = 0;
    std::vector<std::int64_t> per_class;             ///< images per class (multi-label: positives per label)
    std::map<std::int64_t, std::int64_t> bag_sizes;  ///< images per patient -> how many patients
};

inline dataset_summary summarize(const dataset& d) {
    dataset_summary s;
    s.images = d.size();
    s.per_class.assign(std::size_t(d.num_classes), 0);
    for (std::int64_t i = 0; i < d.size(); ++i) {
        if (d.task == task_kind::multiclass)
            ++s.per_class[std::size_t(d.labels[std::size_t(i)])];
        else
            for (std::int64_t c = 0; c < d.num_classes; ++c) s.per_class[std::size_t(c)] += d.targets[std::size_t(i * d.num_classes + c)] >= 0.5f;
    }
    std::map<std::int64_t, std::int64_t> bags;
    for (auto p : d.patients) ++bags[p];
    s.patients = std::int64_t(bags.size());
    for (const auto& [p, n] : bags) ++s.bag_sizes[n];
    return s;
}

}  // namespace micle::data
