#pragma once
// A DATA SPEC - what the trainer's --data takes - opened as one split:
//   a CSV manifest      its `split` column, or else a seeded patient-level split
//                       (70% train, 10% val, 20% test, stratified by label, no patient in two)
//   a MedMNIST .npz     its <split>_images / <split>_labels arrays
//   an IDX directory    train and test as stored ("fashion-mnist" names Debian's copy)
//   a prepared file     (`micle prepare`, prepared.hpp) the splits it was written with, or
//                       else the same seeded patient-level split as its source manifest
//   chexpert:CSV, mimic-cxr:ROOT, nih:CSV   the chest X-ray datasets as shipped
//                       (chest_xray.hpp; the prefix may be left out: the header or the
//                       folder's files tell), their official splits, labels by `labels`
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "micle/data/chest_xray.hpp"
#include "micle/data/prepared.hpp"
#include "micle/data/readers.hpp"
#include "micle/data/split.hpp"

namespace micle::data {

struct open_options {
    read_options read;                               ///< per-image limits, DICOM window
    split_fractions fractions;                       ///< a manifest without a split column
    std::uint64_t split_seed = 0;
    label_policy labels;                             ///< chest X-ray specs: --labels, --uncertain, --missing
    view_filter views = view_filter::all;            ///< chest X-ray specs: --views
    chest_options chest() const { return {labels, views, fractions, split_seed}; }
};

/// A spec's chest X-ray layout and path, or nothing (another kind of source).
struct chest_spec {
    chest_layout layout;
    std::filesystem::path path;
};
inline std::optional<chest_spec> chest_source(const std::string& spec) {
    std::string path = spec;
    if (const auto l = take_layout_prefix(path)) return chest_spec{*l, path};
    if (const auto l = detect_layout(path)) return chest_spec{*l, path};
    return std::nullopt;
}

/// The path a spec names ("fashion-mnist" is Debian's copy).
inline std::filesystem::path spec_path(const std::string& spec) {
    return spec == "fashion-mnist" ? std::filesystem::path(fashion_mnist_dir) : std::filesystem::path(spec);
}

/// The samples of `all` (every sample of a manifest or prepared file) in split `split`:
/// those its split column names, or else a seeded patient-level split.
inline dataset select_split(const dataset& all, const std::string& split, const open_options& opt) {
    std::vector<std::int64_t> idx;
    if (!all.splits.empty()) {
        for (std::int64_t i = 0; i < all.size(); ++i)
            if (all.splits[std::size_t(i)] == split) idx.push_back(i);
    } else {
        const auto parts = patient_split(all, opt.fractions, opt.split_seed);
        idx = split == "train" ? parts.train : (split == "val" ? parts.val : parts.test);
    }
    if (idx.empty()) throw data_error((all.source.ends_with(".csv") ? "manifest " : std::filesystem::is_directory(all.source) ? "dataset " : "prepared dataset ") + all.source +
                                      " has no " + split + " images");
    return all.subset(idx);
}

/// Split `split` (train, val or test) of `spec`. A split the source cannot have (val of an
/// IDX directory) or a bad spec is a value_error; a missing file or an empty split a data_error.
inline dataset open_split(const std::string& spec, const std::string& split, const open_options& opt = {}) {
    check<value_error>(split == "train" || split == "val" || split == "test", "split must be train, val or test, not '",
                       split, "'");
    if (const auto c = chest_source(spec)) return select_split(read_chest_xray(c->layout, c->path, opt.chest(), opt.read), split, opt);
    check<value_error>(opt.labels.labels.empty() && opt.views == view_filter::all, "data ", spec,
                       ": --labels and --views are for chest X-ray specs (chexpert:, mimic-cxr:, nih:)");
    const auto p = spec_path(spec);
    if (std::filesystem::is_directory(p)) {
        check<value_error>(split != "val", "the IDX dataset ", p.string(), " has train and test splits only");
        return read_idx_dataset(p, split, opt.read.limits);
    }
    if (is_prepared_file(p)) return select_split(read_prepared(p), split, opt);
    const std::string ext = p.extension().string();
    if (ext == ".npz") return read_medmnist(p, split, opt.read.limits);
    check<value_error>(ext == ".csv", "data ", spec, ": expected a .csv manifest, a .npz file, a prepared dataset or an IDX directory");
    return select_split(read_csv_manifest(p, opt.read), split, opt);
}

/// Split `split` of `spec`, or nothing when the source has no such split (a manifest
/// without its images, an .npz without its arrays, val of an IDX directory); other
/// errors are thrown as open_split throws them.
inline std::optional<dataset> try_open_split(const std::string& spec, const std::string& split, const open_options& opt = {}) {
    try {
        return open_split(spec, split, opt);
    } catch (const error& e) {
        const std::string what = e.what();
        if (what.find("has no " + split + " images") != std::string::npos ||
            what.find("no array '" + split + "_images'") != std::string::npos || what.find("train and test splits only") != std::string::npos)
            return std::nullopt;
        throw;
    }
}

}  // namespace micle::data

namespace micle::data {

/// `parts` one after the other, as one dataset: split k's samples get split name
/// `names[k]`, and patient ids are kept apart (each part's ids offset past the previous
/// parts'), since these parts number their records from 0 each.
inline dataset concat_splits(const std::vector<dataset>& parts, const std::vector<std::string>& names) {
    check<value_error>(!parts.empty() && parts.size() == names.size(), "concat_splits: ", parts.size(), " parts and ",
                       names.size(), " names");
    dataset d;
    d.source = parts.front().source;
    d.task = parts.front().task;
    d.per_record_patients = parts.front().per_record_patients;
    d.class_names = parts.front().class_names;
    std::vector<std::int64_t> starts;
    std::int64_t patient_base = 0, study_base = 0;
    for (std::size_t k = 0; k < parts.size(); ++k) {
        const auto& p = parts[k];
        check<data_error>(p.task == d.task, d.source, ": split ", names[k], " has another task than ", names[0]);
        check<data_error>(p.task == task_kind::multiclass || p.num_classes == parts.front().num_classes, d.source, ": split ",
                          names[k], " has ", p.num_classes, " labels, ", names[0], " has ", parts.front().num_classes);
        d.num_classes = std::max(d.num_classes, p.num_classes);
        if (p.class_names.size() > d.class_names.size()) d.class_names = p.class_names;
        starts.push_back(d.size());
        std::int64_t top = -1;
        for (std::int64_t i = 0; i < p.size(); ++i) {
            d.patients.push_back(patient_base + p.patients[std::size_t(i)]);
            top = std::max(top, p.patients[std::size_t(i)]);
            d.names.push_back(p.names[std::size_t(i)]);
            d.splits.push_back(names[k]);
        }
        patient_base += top + 1;
        d.labels.insert(d.labels.end(), p.labels.begin(), p.labels.end());
        d.targets.insert(d.targets.end(), p.targets.begin(), p.targets.end());
        d.label_states.insert(d.label_states.end(), p.label_states.begin(), p.label_states.end());
        check<data_error>(p.label_states.empty() == parts.front().label_states.empty() && p.studies.empty() == parts.front().studies.empty(),
                          d.source, ": split ", names[k], " has label states or study ids and ", names[0], " not, or the reverse");
        std::int64_t study_top = -1;
        for (auto s : p.studies) d.studies.push_back(study_base + s), study_top = std::max(study_top, s);
        study_base += study_top + 1;
    }
    d.decode = [parts, starts](std::int64_t i, const decode_plan& plan) {
        const auto k = std::size_t(std::upper_bound(starts.begin(), starts.end(), i) - starts.begin() - 1);
        return parts[k].decode(i - starts[k], plan);
    };
    d.validate();
    return d;
}

/// Every sample of `spec`, each with its split where the source has them: a manifest or a
/// prepared file as read, and an IDX directory's or a MedMNIST file's splits one after the
/// other (what `micle prepare` writes).
inline dataset open_all(const std::string& spec, const open_options& opt = {}) {
    if (const auto c = chest_source(spec)) return read_chest_xray(c->layout, c->path, opt.chest(), opt.read);
    const auto p = spec_path(spec);
    if (is_prepared_file(p)) return read_prepared(p);
    const std::string ext = p.extension().string();
    if (!std::filesystem::is_directory(p) && ext == ".csv") return read_csv_manifest(p, opt.read);
    std::vector<dataset> parts;
    std::vector<std::string> names;
    for (const std::string split : {"train", "val", "test"})
        if (auto d = try_open_split(spec, split, opt)) {
            parts.push_back(std::move(*d));
            names.push_back(split);
        }
    if (parts.empty()) throw data_error(micle::detail::cat("data ", spec, ": no train, val or test split"));
    return concat_splits(parts, names);
}

}  // namespace micle::data
