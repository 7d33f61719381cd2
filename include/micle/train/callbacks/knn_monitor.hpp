#pragma once
// kNN accuracy of a backbone's features during pretraining (train::fit callback).
#include <algorithm>
#include <cstdint>

#include "micle/data/labeled.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/knn.hpp"
#include "micle/train/predict.hpp"

namespace micle::train {

/// kNN accuracy (knn_accuracy) of the backbone's features every `every` epochs: `bank`
/// (labelled training images) votes for the classes of `val`, as lightly and solo-learn
/// monitor pretraining. Both should be data::labeled_images without augmentation
/// (augment_config::eval) and without shuffling. Multi-class datasets only.
template <class Learner>
class knn_monitor {
public:
    knn_monitor(Learner& learner, data::labeled_images bank, data::labeled_images val, std::int64_t every = 1,
                knn_config cfg = {}, std::int64_t batch = 128, int workers = 2)
        : learner_(learner), bank_(std::move(bank)), val_(std::move(val)), every_(every), cfg_(cfg), batch_(batch),
          workers_(workers) {
        check<value_error>(bank_.data().task == data::task_kind::multiclass && val_.data().task == data::task_kind::multiclass,
                           "knn_monitor: needs multi-class labels");
        check<value_error>(every >= 1, "knn_monitor: every must be >= 1");
    }
    void on_validate(epoch_info& e) {
        if (e.epoch % every_ != 0 && e.epoch != e.epochs) return;
        e.metrics["knn_accuracy"] = accuracy();
    }
    double accuracy() {
        std::int64_t dim = 0;
        const auto bank = embed_all(learner_, bank_, batch_, workers_, &dim);
        const auto queries = embed_all(learner_, val_, batch_, workers_);
        const auto classes = std::max(bank_.data().num_classes, val_.data().num_classes);
        return knn_accuracy(bank, bank_.data().labels, queries, val_.data().labels, dim, classes, cfg_);
    }

private:
    Learner& learner_;
    data::labeled_images bank_, val_;
    std::int64_t every_;
    knn_config cfg_;
    std::int64_t batch_;
    int workers_;
};

}  // namespace micle::train
