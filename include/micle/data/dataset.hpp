#pragma once
// A dataset: per-sample patient ids and labels, and a function that decodes sample i.
// Readers (IDX, MedMNIST .npz, CSV manifests, prepared files) build one; splits and pair
// strategies work on indices into it.
//
// Decoding is planned: the decoder reads the sample's header, asks the caller's plan how
// small it may decode and which region will be sampled (augmentations draw their crops
// from the full-resolution header), and returns pixels at their source depth. A JPEG is
// then decoded with DCT scaling and only the rows and columns the crops touch.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "micle/data/image.hpp"

namespace micle::data {

enum class task_kind : std::uint8_t {
    multiclass,  ///< one class index per sample (softmax cross-entropy)
    multilabel,  ///< K independent 0/1 labels per sample (sigmoid BCE)
};

/// A multi-label entry as its source wrote it (CheXpert, MIMIC-CXR: 1.0, 0.0, -1.0 or blank).
enum class label_state : std::int8_t { missing = -2, uncertain = -1, negative = 0, positive = 1 };

/// The target value that leaves a multi-label entry out: NaN. A left-out entry adds nothing
/// to the loss or its gradient (the loss is masked) and is not counted in that label's AUC,
/// accuracy or interval.
inline constexpr float left_out = std::numeric_limits<float>::quiet_NaN();
inline bool is_left_out(float target) noexcept { return target != target; }

class dataset {
public:
    std::string source;                 ///< file or directory, for messages
    task_kind task = task_kind::multiclass;
    std::int64_t num_classes = 0;       ///< classes (multiclass) or labels (multilabel)
    std::vector<std::string> class_names;
    std::vector<std::int64_t> patients; ///< patient id per sample
    std::vector<int> labels;            ///< multiclass: class index per sample
    std::vector<float> targets;         ///< multilabel: num_classes values per sample (0, 1, or left_out)
    /// Multi-label, where the source has them: each entry as written, num_classes per sample
    /// (what `micle check` counts); the label policy made `targets` from them. Else empty.
    std::vector<label_state> label_states;
    /// Per sample study (one visit's images: frontal and lateral), where the source has
    /// them (CheXpert, MIMIC-CXR): MICLe's bags with `bag_by::study`. Else empty.
    std::vector<std::int64_t> studies;
    std::vector<std::string> names;     ///< per sample: file name or "record i", for messages
    std::vector<std::string> splits;    ///< per sample split name from the source (CSV split column), or empty
    bool simulated_patients = false;    ///< patient ids come from simulate_acquisitions() or simulate_bags()
    /// What a simulated bag holds: "acquisitions" (simulate_acquisitions: one image's
    /// simulated acquisitions, no label read) or "same-class" (simulate_bags: images of one
    /// class, labels used); empty for real patient ids.
    std::string simulated_bags;
    bool per_record_patients = false;   ///< the source has no patient ids: each record is its own (IDX, MedMNIST)
    /// Decodes sample i as `plan` allows (thread-safe; called from loader threads). An empty
    /// plan asks for the whole image at full resolution.
    std::function<source_image(std::int64_t, const decode_plan&)> decode;

    std::int64_t size() const noexcept { return static_cast<std::int64_t>(patients.size()); }

    /// Decodes sample i as `plan` allows; a decoding failure is rethrown naming the sample
    /// and the source. A plan is called exactly once: by the decoder from the header, or
    /// here from the decoded image when the decoder has no use for it (DICOM, arrays).
    source_image load_source(std::int64_t i, const decode_plan& plan = {}) const {
        check<value_error>(i >= 0 && i < size(), "dataset ", source, ": sample ", i, " is out of range [0, ", size(), ")");
        try {
            if (!plan) return decode(i, plan);
            bool planned = false;
            source_image img = decode(i, [&](const image_header& h) {
                planned = true;
                return plan(h);
            });
            if (!planned) plan(img.header());
            return img;
        } catch (const data_error&) {
            throw;
        } catch (const std::exception& e) {
            throw data_error(micle::detail::cat("dataset ", source, ": ", names[std::size_t(i)], ": ", e.what()));
        }
    }
    /// Sample i, whole and at full resolution, as planar floats.
    image load(std::int64_t i) const { return to_image(load_source(i)); }

    /// The samples at `idx`, in that order (patients, labels and decoding follow).
    dataset subset(std::span<const std::int64_t> idx) const {
        dataset d;
        d.source = source;
        d.task = task;
        d.num_classes = num_classes;
        d.class_names = class_names;
        d.simulated_patients = simulated_patients;
        d.simulated_bags = simulated_bags;
        d.per_record_patients = per_record_patients;
        auto order = std::make_shared<std::vector<std::int64_t>>(idx.begin(), idx.end());
        for (auto i : idx) {
            check<value_error>(i >= 0 && i < size(), "dataset ", source, ": subset index ", i, " is out of range");
            d.patients.push_back(patients[std::size_t(i)]);
            d.names.push_back(names[std::size_t(i)]);
            if (!splits.empty()) d.splits.push_back(splits[std::size_t(i)]);
            if (task == task_kind::multiclass)
                d.labels.push_back(labels[std::size_t(i)]);
            else
                d.targets.insert(d.targets.end(), targets.begin() + i * num_classes, targets.begin() + (i + 1) * num_classes);
            if (!label_states.empty())
                d.label_states.insert(d.label_states.end(), label_states.begin() + i * num_classes,
                                      label_states.begin() + (i + 1) * num_classes);
            if (!studies.empty()) d.studies.push_back(studies[std::size_t(i)]);
        }
        d.decode = [parent = decode, order](std::int64_t i, const decode_plan& plan) { return parent((*order)[std::size_t(i)], plan); };
        return d;
    }

    /// Checks that the per-sample vectors agree; readers call it before returning.
    void validate() const {
        const auto n = std::size_t(size());
        check<data_error>(names.size() == n, "dataset ", source, ": ", names.size(), " names for ", n, " samples");
        check<data_error>(num_classes > 0, "dataset ", source, ": no classes");
        if (task == task_kind::multiclass) {
            check<data_error>(labels.size() == n, "dataset ", source, ": ", labels.size(), " labels for ", n, " samples");
            for (std::size_t i = 0; i < n; ++i)
                check<data_error>(labels[i] >= 0 && labels[i] < num_classes, "dataset ", source, ": ", names[i],
                                  ": label ", labels[i], " is outside [0, ", num_classes, ")");
        } else {
            check<data_error>(targets.size() == n * std::size_t(num_classes), "dataset ", source, ": ", targets.size(),
                              " targets for ", n, " samples x ", num_classes, " labels");
            for (std::size_t i = 0; i < targets.size(); ++i)
                check<data_error>(is_left_out(targets[i]) || (targets[i] >= 0.0f && targets[i] <= 1.0f), "dataset ", source, ": ",
                                  names[i / std::size_t(num_classes)], ": target ", targets[i], " is not in [0, 1]");
            check<data_error>(label_states.empty() || label_states.size() == targets.size(), "dataset ", source, ": ",
                              label_states.size(), " label states for ", targets.size(), " targets");
        }
        check<data_error>(studies.empty() || studies.size() == n, "dataset ", source, ": ", studies.size(), " study ids for ", n,
                          " samples");
        check<data_error>(static_cast<bool>(decode), "dataset ", source, ": no decoder");
    }
};

/// A dataset over an in-memory array of 8-bit images [N, H, W] or [N, H, W, C] (IDX,
/// MedMNIST): a sample is a view into the array, with no copy.
inline std::function<source_image(std::int64_t, const decode_plan&)> uint8_decoder(
    std::shared_ptr<const std::vector<std::uint8_t>> pixels, std::int64_t height, std::int64_t width, std::int64_t channels) {
    return [pixels = std::move(pixels), height, width, channels](std::int64_t i, const decode_plan&) {
        source_image s;
        s.channels = channels;
        s.height = s.full_height = height;
        s.width = s.full_width = width;
        s.data = pixels->data() + i * height * width * channels;
        s.owner = pixels;
        return s;
    };
}

}  // namespace micle::data
