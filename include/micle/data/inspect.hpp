#pragma once
// A pre-flight look at a dataset (`micle check`): every image decoded once, the ones that
// cannot be read listed with their names (manifest line and path), and a summary of the
// classes and patient bags.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "micle/data/dataset.hpp"
#include "micle/data/open.hpp"

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

/// `micle check`: every split of a DATA SPEC read once and every image decoded, with a
/// report on `out` - per split the images, patients and unreadable files (each with its
/// manifest line), the class balance and patient bag sizes, and, where the source has
/// patient ids (a CSV manifest, a prepared file of one), the patients found in two splits.
/// Returns the number of unreadable images.
inline std::size_t check(const std::string& spec, const open_options& opt, int workers, std::FILE* out) {
    bool patient_ids = false;  // ids the same in every split: a manifest's, not per-record ones
    std::size_t bad = 0;
    std::map<std::string, std::set<std::int64_t>> patients_of;
    std::fprintf(out, "%s\n", spec.c_str());
    for (const std::string split : {"train", "val", "test"}) {
        const std::optional<dataset> found = try_open_split(spec, split, opt);  // each split read once
        if (!found) {
            std::fprintf(out, "  %s: none\n", split.c_str());
            continue;
        }
        const auto& d = *found;
        const auto errors = unreadable_samples(d, workers);
        const auto s = summarize(d);
        bad += errors.size();
        std::fprintf(out, "  %s: %lld images, %lld patients, %zu unreadable\n", split.c_str(), (long long)s.images,
                     (long long)s.patients, errors.size());
        std::string line;
        for (std::size_t c = 0; c < s.per_class.size(); ++c)
            line += micle::detail::cat(c ? ", " : "", c < d.class_names.size() ? d.class_names[c] : std::to_string(c), ": ",
                                       s.per_class[c], d.task == task_kind::multilabel ? " positive" : "");
        std::fprintf(out, "    classes: %s\n    patient bags (patients x images): ", line.c_str());
        for (const auto& [images, patients] : s.bag_sizes)
            std::fprintf(out, "%s%lld x %lld", images == s.bag_sizes.begin()->first ? "" : ", ", (long long)patients,
                         (long long)images);
        std::fprintf(out, "%s\n", d.per_record_patients ? " (each record is its own patient)" : "");
        for (const auto& e : errors) std::fprintf(out, "    unreadable: %s\n", e.c_str());
        patient_ids = !d.per_record_patients;
        if (patient_ids) patients_of[split].insert(d.patients.begin(), d.patients.end());
    }
    if (patient_ids) {
        std::size_t leaks = 0;
        for (const auto& [a, b] : {std::pair{"train", "val"}, {"train", "test"}, {"val", "test"}}) {
            std::vector<std::int64_t> both;
            std::set_intersection(patients_of[a].begin(), patients_of[a].end(), patients_of[b].begin(), patients_of[b].end(),
                                  std::back_inserter(both));
            if (!both.empty()) std::fprintf(out, "  LEAK: %zu patients have images in both %s and %s\n", both.size(), a, b);
            leaks += both.size();
        }
        if (leaks == 0) std::fprintf(out, "  no patient is in two splits\n");
    }
    std::fprintf(out, bad ? "%zu unreadable images\n" : "every image decodes\n", bad);
    return bad;
}

}  // namespace micle::data
