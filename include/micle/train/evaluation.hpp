#pragma once
// The paper's evaluation of a fine-tuned model on a labelled split: top-1 accuracy,
// per-class and macro AUC, the confusion matrix, the same after averaging each patient's
// image probabilities, and one-vs-rest ROC curves - as a JSON report (`micle evaluate`).
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <vector>

#include "micle/data/labeled.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/metrics.hpp"

namespace micle::train {

struct evaluation {
    bool multiclass = true;
    std::vector<float> probs;                 ///< N x K, in dataset order
    metrics::classification_report images;    ///< per image
    metrics::classification_report patients;  ///< per patient (mean probabilities)
};

/// Probabilities of every image of `d` (unaugmented, `image_size` px, `channels`) and the
/// metrics of both levels.
template <class Learner>
evaluation evaluate(Learner& learner, const data::dataset& d, std::int64_t image_size, std::int64_t channels,
                    std::int64_t batch = 128, int workers = 2) {
    evaluation e;
    e.multiclass = d.task == data::task_kind::multiclass;
    e.probs = predict_all(learner, data::labeled_images(d, data::augment_config::eval(image_size), channels, 0, false), batch, workers);
    const auto k = d.num_classes;
    e.images = e.multiclass ? metrics::multiclass(e.probs, d.labels, k) : metrics::multilabel(e.probs, d.targets, k);
    const auto a = metrics::aggregate_by_patient(e.probs, k, d.patients, e.multiclass ? std::span<const int>(d.labels) : std::span<const int>{},
                                                 e.multiclass ? std::span<const float>{} : std::span<const float>(d.targets));
    e.patients = e.multiclass ? metrics::multiclass(a.probs, a.labels, k) : metrics::multilabel(a.probs, a.targets, k);
    return e;
}

/// A number for JSON: NaN (the AUC of a class absent from the split) becomes null.
inline nlohmann::json json_number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

/// {"n", "accuracy", "auc_macro", "auc_per_class", "confusion_matrix" (multi-class)}.
inline nlohmann::json to_json(const metrics::classification_report& r, bool multiclass) {
    nlohmann::json j{{"n", r.n}, {"accuracy", json_number(r.accuracy)}, {"auc_macro", json_number(r.auc_macro)}};
    j["auc_per_class"] = nlohmann::json::array();
    for (double a : r.auc_per_class) j["auc_per_class"].push_back(json_number(a));
    if (multiclass) j["confusion_matrix"] = r.confusion;
    return j;
}

/// One-vs-rest ROC curves (per class, or per label) as `class,fpr,tpr` lines.
inline void write_roc_csv(const std::filesystem::path& path, std::span<const float> probs, const data::dataset& d) {
    std::ofstream roc(path);
    roc << "class,fpr,tpr\n";
    const auto n = d.size(), k = d.num_classes;
    const bool mc = d.task == data::task_kind::multiclass;
    std::vector<float> col(static_cast<std::size_t>(n));
    std::unique_ptr<bool[]> pos(new bool[std::size_t(std::max<std::int64_t>(n, 1))]);
    for (std::int64_t c = 0; c < k; ++c) {
        for (std::int64_t i = 0; i < n; ++i) {
            col[std::size_t(i)] = probs[std::size_t(i * k + c)];
            pos[std::size_t(i)] = mc ? d.labels[std::size_t(i)] == c : d.targets[std::size_t(i * k + c)] >= 0.5f;
        }
        for (const auto& [fpr, tpr] : metrics::roc_curve(col, std::span<const bool>(pos.get(), std::size_t(n))))
            roc << c << ',' << fpr << ',' << tpr << '\n';
    }
    check<value_error>(bool(roc), "write_roc_csv: cannot write ", path);
}

}  // namespace micle::train
