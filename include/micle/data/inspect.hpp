#pragma once
// A pre-flight look at a dataset (`micle check`): every image decoded once, the ones that
// cannot be read listed with their names (manifest line and path), a summary of the
// classes and patient bags, and the patients found in two splits (a leak: the test
// patients' images must not have been trained on).
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
#include "micle/data/labels.hpp"
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

/// A patient with images in two splits, named by one image in each.
struct patient_leak {
    std::string split_a, split_b;
    std::int64_t patient = 0;
    std::string image_a, image_b;
};

/// The patients of `splits` (name -> dataset, each opened from one source) found in two of
/// them, in the order train/val, train/test, val/test and then by patient. None where the
/// source has no patient ids (each record its own patient: IDX, MedMNIST).
inline std::vector<patient_leak> find_leaks(const std::map<std::string, dataset>& splits) {
    std::vector<patient_leak> out;
    std::map<std::string, std::map<std::int64_t, std::string>> first_image;  // split -> patient -> an image
    for (const auto& [name, d] : splits) {
        if (d.per_record_patients) return {};
        auto& m = first_image[name];
        for (std::size_t i = 0; i < d.patients.size(); ++i) m.emplace(d.patients[i], d.names[i]);
    }
    for (const auto& [a, b] : {std::pair<std::string, std::string>{"train", "val"}, {"train", "test"}, {"val", "test"}}) {
        if (!first_image.count(a) || !first_image.count(b)) continue;
        const auto &ma = first_image[a], &mb = first_image[b];
        for (const auto& [p, image] : ma)
            if (const auto it = mb.find(p); it != mb.end()) out.push_back({a, b, p, image, it->second});
    }
    return out;
}

/// The leaks of a DATA SPEC: its train, val and test splits opened (no image decoded).
inline std::vector<patient_leak> find_leaks(const std::string& spec, const open_options& opt = {}) {
    std::map<std::string, dataset> splits;
    for (const std::string split : {"train", "val", "test"})
        if (auto d = try_open_split(spec, split, opt)) splits.emplace(split, std::move(*d));
    return find_leaks(splits);
}

/// Prints the leaks to `out`, at most `max_listed` of them one per line (with an image of
/// the patient in each split), then a count per pair of splits.
inline void print_leaks(const std::vector<patient_leak>& leaks, std::FILE* out, std::size_t max_listed = 20) {
    std::map<std::pair<std::string, std::string>, std::size_t> per_pair;
    for (std::size_t i = 0; i < leaks.size(); ++i) {
        const auto& l = leaks[i];
        ++per_pair[{l.split_a, l.split_b}];
        if (i < max_listed)
            std::fprintf(out, "    one patient: %s in %s, %s in %s\n", l.image_a.c_str(), l.split_a.c_str(), l.image_b.c_str(),
                         l.split_b.c_str());
    }
    if (leaks.size() > max_listed) std::fprintf(out, "    ... and %zu more\n", leaks.size() - max_listed);
    for (const auto& [pair, n] : per_pair)
        std::fprintf(out, "  LEAK: %zu patients have images in both %s and %s\n", n, pair.first.c_str(), pair.second.c_str());
}

/// What `micle check` found.
struct check_result {
    std::size_t unreadable = 0;
    std::vector<patient_leak> leaks;
};

/// `micle check`: every split of a DATA SPEC read once and every image decoded, with a
/// report on `out` - per split the images, patients and unreadable files (each with its
/// manifest line), the class balance and patient bag sizes, and, where the source has
/// patient ids (a CSV manifest, a prepared file of one), the patients found in two splits.
/// Returns the unreadable images' count and the leaks.
inline check_result check(const std::string& spec, const open_options& opt, int workers, std::FILE* out) {
    check_result r;
    std::map<std::string, dataset> splits;
    std::fprintf(out, "%s\n", spec.c_str());
    for (const std::string split : {"train", "val", "test"}) {
        std::optional<dataset> found = try_open_split(spec, split, opt);  // each split read once
        if (!found) {
            std::fprintf(out, "  %s: none\n", split.c_str());
            continue;
        }
        const auto& d = *found;
        const auto errors = unreadable_samples(d, workers);
        const auto s = summarize(d);
        r.unreadable += errors.size();
        std::fprintf(out, "  %s: %lld images, %lld patients, %zu unreadable\n", split.c_str(), (long long)s.images,
                     (long long)s.patients, errors.size());
        if (d.task == task_kind::multiclass) {
            std::string line;
            for (std::size_t c = 0; c < s.per_class.size(); ++c)
                line += micle::detail::cat(c ? ", " : "", c < d.class_names.size() ? d.class_names[c] : std::to_string(c), ": ",
                                           s.per_class[c]);
            std::fprintf(out, "    classes: %s\n", line.c_str());
        } else {  // per label, what the source wrote, and how many entries the label policy leaves out
            const auto counts = count_labels(d);
            std::fprintf(out, "    labels (positive / negative / uncertain / missing; left out of loss and metrics):\n");
            for (std::size_t c = 0; c < counts.size(); ++c) {
                const auto& k = counts[c];
                std::fprintf(out, "      %s: %lld / %lld / %lld / %lld; %lld left out\n",
                             c < d.class_names.size() ? d.class_names[c].c_str() : std::to_string(c).c_str(), (long long)k.positive,
                             (long long)k.negative, (long long)k.uncertain, (long long)k.missing, (long long)k.left_out);
            }
        }
        if (!d.studies.empty())
            std::fprintf(out, "    studies: %zu\n", std::set<std::int64_t>(d.studies.begin(), d.studies.end()).size());
        std::fprintf(out, "    patient bags (patients x images): ");
        for (const auto& [images, patients] : s.bag_sizes)
            std::fprintf(out, "%s%lld x %lld", images == s.bag_sizes.begin()->first ? "" : ", ", (long long)patients,
                         (long long)images);
        std::fprintf(out, "%s\n", d.per_record_patients ? " (each record is its own patient)" : "");
        for (const auto& e : errors) std::fprintf(out, "    unreadable: %s\n", e.c_str());
        splits.emplace(split, std::move(*found));
    }
    const bool patient_ids = !splits.empty() && !splits.begin()->second.per_record_patients;
    if (patient_ids) {
        r.leaks = find_leaks(splits);
        if (r.leaks.empty()) std::fprintf(out, "  no patient is in two splits\n");
        print_leaks(r.leaks, out);
    }
    std::fprintf(out, r.unreadable ? "%zu unreadable images\n" : "every image decodes\n", r.unreadable);
    return r;
}

}  // namespace micle::data
