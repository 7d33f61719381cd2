#pragma once
// A DATA SPEC - what the trainer's --data takes - opened as one split:
//   a CSV manifest      its `split` column, or else a seeded patient-level split
//                       (70% train, 10% val, 20% test, stratified by label, no patient in two)
//   a MedMNIST .npz     its <split>_images / <split>_labels arrays
//   an IDX directory    train and test as stored ("fashion-mnist" names Debian's copy)
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "micle/data/readers.hpp"
#include "micle/data/split.hpp"

namespace micle::data {

struct open_options {
    read_options read;                               ///< per-image limits, DICOM window
    split_fractions fractions;                       ///< a manifest without a split column
    std::uint64_t split_seed = 0;
};

/// The path a spec names ("fashion-mnist" is Debian's copy).
inline std::filesystem::path spec_path(const std::string& spec) {
    return spec == "fashion-mnist" ? std::filesystem::path(fashion_mnist_dir) : std::filesystem::path(spec);
}

/// Split `split` (train, val or test) of `spec`. A split the source cannot have (val of an
/// IDX directory) or a bad spec is a value_error; a missing file or an empty split a data_error.
inline dataset open_split(const std::string& spec, const std::string& split, const open_options& opt = {}) {
    check<value_error>(split == "train" || split == "val" || split == "test", "split must be train, val or test, not '",
                       split, "'");
    const auto p = spec_path(spec);
    if (std::filesystem::is_directory(p)) {
        check<value_error>(split != "val", "the IDX dataset ", p.string(), " has train and test splits only");
        return read_idx_dataset(p, split, opt.read.limits);
    }
    const std::string ext = p.extension().string();
    if (ext == ".npz") return read_medmnist(p, split, opt.read.limits);
    check<value_error>(ext == ".csv", "data ", spec, ": expected a .csv manifest, a .npz file or an IDX directory");
    const auto all = read_csv_manifest(p, opt.read);
    std::vector<std::int64_t> idx;
    if (!all.splits.empty()) {
        for (std::int64_t i = 0; i < all.size(); ++i)
            if (all.splits[std::size_t(i)] == split) idx.push_back(i);
    } else {
        const auto parts = patient_split(all, opt.fractions, opt.split_seed);
        idx = split == "train" ? parts.train : (split == "val" ? parts.val : parts.test);
    }
    if (idx.empty()) throw data_error("manifest " + p.string() + " has no " + split + " images");
    return all.subset(idx);
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
