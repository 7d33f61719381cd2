#pragma once
// The paper's evaluation of a fine-tuned model on a labelled split: top-1 accuracy,
// per-class and macro AUC, the confusion matrix, the same after averaging each patient's
// image probabilities, and one-vs-rest ROC curves - as a JSON report (`micle evaluate`).
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <span>
#include <vector>

#include "micle/core/file.hpp"
#include "micle/data/labeled.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/safetensors.hpp"
#include "micle/train/supervised_learner.hpp"

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
    std::ostringstream roc;
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
    write_file_atomically<data::data_error>(path, roc.str(), "write_roc_csv");
}

/// `j` written to `path` whole or not at all: a reader never sees half a report.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
    write_file_atomically<data::data_error>(path, j.dump(1) + "\n", "write_json");
}

struct evaluate_options {
    std::int64_t batch = 128;
    int workers = 2;
    bool patient_level = false;      ///< also the metrics after averaging each patient's probabilities
    std::filesystem::path roc_csv;   ///< where to write the ROC curves (write_roc_csv); empty: nowhere
};

namespace detail {
/// The backbone of a saved model: its metadata over resnet18 (what micle's commands default to).
inline models::resnet_config saved_backbone(const std::map<std::string, std::string>& meta) {
    models::resnet_config defaults;
    defaults.depth = 18;
    return models::resnet_from_metadata(meta, defaults);
}
}  // namespace detail

/// A fine-tuned model - a `finetune` run directory (its `selected` checkpoint) or a model
/// file with micle's classifier metadata - evaluated on `d`: the JSON report of `micle
/// evaluate`: task, model, n, accuracy, auc_macro, auc_per_class, confusion_matrix
/// (multi-class), patient_level, roc_csv and class_names where there are some.
template <class B>
nlohmann::json evaluate_checkpoint(context<B>& ctx, const std::filesystem::path& model, const data::dataset& d,
                                   const evaluate_options& opt = {}) {
    check<value_error>(opt.batch >= 1 && opt.workers >= 1, "evaluate: need batch >= 1 and workers >= 1");
    const auto file = weights_file(model);
    const safetensors::reader weights(file);
    const auto meta = weights.metadata();
    check<value_error>(meta.count("classes") && meta.count("task") && meta.count("image-size"), file.string(),
                       " is not a fine-tuned micle model (no classes/task/image-size metadata)");
    using learner_t = supervised_learner<B, models::resnet, optim::sgd>;
    typename learner_t::config cfg;
    cfg.backbone = detail::saved_backbone(meta);
    cfg.classes = std::stoll(meta.at("classes"));
    cfg.task = meta.at("task") == "multilabel" ? task_type::multilabel : task_type::multiclass;
    cfg.feature_norm = weights.contains("fc_norm.running_mean");  // a linear probe's
    check<data::data_error>(d.num_classes == cfg.classes, "evaluate: ", d.source, " has ", d.num_classes, " classes, the model ",
                            cfg.classes);
    learner_t learner(ctx, cfg);
    auto state = learner.state();
    load_weights(file, ctx, state);
    const auto e = evaluate(learner, d, std::stoll(meta.at("image-size")), cfg.backbone.in_channels, opt.batch, opt.workers);
    nlohmann::json j{{"task", e.multiclass ? "multiclass" : "multilabel"}, {"model", file.string()}};
    j.update(to_json(e.images, e.multiclass));
    if (opt.patient_level) j["patient_level"] = to_json(e.patients, e.multiclass);
    if (!opt.roc_csv.empty()) {
        write_roc_csv(opt.roc_csv, e.probs, d);
        j["roc_csv"] = opt.roc_csv.string();
    }
    if (const auto it = meta.find("class-names"); it != meta.end()) {
        std::vector<std::string> names;
        for (std::size_t start = 0;;) {
            const auto tab = it->second.find('\t', start);
            names.push_back(it->second.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        j["class_names"] = names;
    }
    return j;
}


/// Backbone features of a checkpoint's images, as `micle embed` writes them.
struct embedding {
    std::vector<float> features;  ///< N x dim, in dataset order
    std::int64_t dim = 0;
    std::int64_t image_size = 0;  ///< the size the images were resized to (the model's)
    std::filesystem::path file;   ///< the weights file the backbone came from
};

namespace detail {
/// A backbone alone, frozen: what embed_all needs of a learner.
template <class B>
class frozen_backbone {
public:
    using backend = B;
    frozen_backbone(context<B>& ctx, const models::resnet_config& cfg) : ctx_(ctx), net_(ctx, cfg, 0) {}
    const tensor<B>& embed(const tensor<B>& images) { return net_.forward(ctx_, images, false); }
    context<B>& ctx() noexcept { return ctx_; }
    nn::state_list<B> state() { return net_.state(); }

private:
    context<B>& ctx_;
    models::resnet<B> net_;
};
}  // namespace detail

/// The backbone features of every image of `d` (unaugmented, resized to the model's image
/// size, in dataset order) under the weights of `model`: a `pretrain` or `finetune` run
/// directory or a model.safetensors with micle's metadata. Heads in the file are ignored;
/// every backbone tensor must be there.
template <class B>
embedding embed_checkpoint(context<B>& ctx, const std::filesystem::path& model, const data::dataset& d,
                           const evaluate_options& opt = {}) {
    check<value_error>(opt.batch >= 1 && opt.workers >= 1, "embed: need batch >= 1 and workers >= 1");
    embedding out;
    out.file = weights_file(model);
    const auto meta = safetensors::reader(out.file).metadata();
    check<value_error>(meta.count("image-size") != 0, out.file.string(),
                       " has no image-size metadata (not written by micle pretrain or finetune)");
    const auto cfg = detail::saved_backbone(meta);
    out.image_size = std::stoll(meta.at("image-size"));
    detail::frozen_backbone<B> net(ctx, cfg);
    auto state = net.state();
    const auto r = load_weights(out.file, ctx, state, {false, true});
    check<data::data_error>(r.missing.empty(), "embed: ", out.file.string(), " lacks ", r.missing.size(),
                            " backbone tensors, the first ", r.missing.empty() ? "" : r.missing.front());
    out.features = embed_all(net, data::labeled_images(d, data::augment_config::eval(out.image_size), cfg.in_channels, 0, false),
                             opt.batch, opt.workers, &out.dim);
    return out;
}

}  // namespace micle::train
