#pragma once
// Validation of a supervised learner during fine-tuning (train::fit callback).
#include <cstdint>

#include "micle/data/labeled.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/predict.hpp"

namespace micle::train {

/// Accuracy and macro AUC (val_accuracy, val_auc) of a supervised learner on a labelled
/// split, every `every` epochs (and at the last one).
template <class Learner>
class validation {
public:
    validation(Learner& learner, data::labeled_images val, std::int64_t every = 1, std::int64_t batch = 128, int workers = 2)
        : learner_(learner), val_(std::move(val)), every_(every), batch_(batch), workers_(workers) {
        check<value_error>(every >= 1 && batch >= 1, "validation: need every >= 1 and batch >= 1");
    }
    void on_validate(epoch_info& e) {
        if (e.epoch % every_ != 0 && e.epoch != e.epochs) return;
        const auto r = evaluate();
        e.metrics["val_accuracy"] = r.accuracy;
        e.metrics["val_auc"] = r.auc_macro;
    }
    /// The learner's metrics on the split now.
    metrics::classification_report evaluate() {
        const auto probs = predict_all(learner_, val_, batch_, workers_);
        const auto& d = val_.data();
        return d.task == data::task_kind::multiclass ? metrics::multiclass(probs, d.labels, d.num_classes)
                                                      : metrics::multilabel(probs, d.targets, d.num_classes);
    }

private:
    Learner& learner_;
    data::labeled_images val_;
    std::int64_t every_, batch_;
    int workers_;
};

}  // namespace micle::train
