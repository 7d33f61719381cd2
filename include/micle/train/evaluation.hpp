#pragma once
// The paper's evaluation of a fine-tuned model on a labelled split: top-1 accuracy,
// per-class and macro AUC, the confusion matrix, the same after averaging each patient's
// image probabilities, and one-vs-rest ROC curves - as a JSON report (`micle evaluate`),
// each metric with its 95% interval (train/statistics.hpp), and per-image predictions.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <span>
#include <vector>

#include "micle/core/file.hpp"
#include "micle/data/csv.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/labels.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/predict.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/safetensors.hpp"
#include "micle/train/statistics.hpp"
#include "micle/train/supervised_learner.hpp"

namespace micle::train {

struct evaluation {
    bool multiclass = true;
    std::vector<float> probs;                 ///< N x K, in dataset order
    metrics::classification_report images;    ///< per image
    metrics::classification_report patients;  ///< per patient (mean probabilities)
    metrics::patient_aggregate by_patient;    ///< the patients' mean probabilities and labels
    /// The image-level scores, as train/statistics.hpp takes them (valid while `d` and this live).
    stats::scored image_scores(const data::dataset& d) const {
        return {probs, d.num_classes, multiclass ? std::span<const int>(d.labels) : std::span<const int>{},
                multiclass ? std::span<const float>{} : std::span<const float>(d.targets)};
    }
    stats::scored patient_scores(std::int64_t k) const {
        return {by_patient.probs, k, multiclass ? std::span<const int>(by_patient.labels) : std::span<const int>{},
                multiclass ? std::span<const float>{} : std::span<const float>(by_patient.targets)};
    }
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
    e.by_patient = metrics::aggregate_by_patient(e.probs, k, d.patients,
                                                 e.multiclass ? std::span<const int>(d.labels) : std::span<const int>{},
                                                 e.multiclass ? std::span<const float>{} : std::span<const float>(d.targets));
    const auto& a = e.by_patient;
    e.patients = e.multiclass ? metrics::multiclass(a.probs, a.labels, k) : metrics::multilabel(a.probs, a.targets, k);
    return e;
}

/// A number for JSON: NaN (the AUC of a class absent from the split) becomes null.
inline nlohmann::json json_number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

/// {"n", "accuracy", "auc_macro", "auc_per_class", "confusion_matrix" (multi-class) or
/// "n_per_label" and "positives_per_label" (multi-label)}.
inline nlohmann::json to_json(const metrics::classification_report& r, bool multiclass) {
    nlohmann::json j{{"n", r.n}, {"accuracy", json_number(r.accuracy)}, {"auc_macro", json_number(r.auc_macro)}};
    j["auc_per_class"] = nlohmann::json::array();
    for (double a : r.auc_per_class) j["auc_per_class"].push_back(json_number(a));
    if (multiclass) j["confusion_matrix"] = r.confusion;
    if (!multiclass) {  // what each label's AUC counts once left-out entries are masked
        j["n_per_label"] = r.n_per_class;
        j["positives_per_label"] = r.positives_per_class;
    }
    return j;
}

/// An interval as [lo, hi] (nulls where undefined).
inline nlohmann::json json_interval(const stats::interval& i) { return {json_number(i.lo), json_number(i.hi)}; }

/// Adds accuracy_ci95, auc_macro_ci95, auc_per_class_ci95 and how they were computed
/// (ci_method; with a bootstrap also bootstrap_replicates, bootstrap_patients, bootstrap_seed).
inline void add_intervals(nlohmann::json& j, const stats::intervals& iv, std::uint64_t seed = 0) {
    j["accuracy_ci95"] = json_interval(iv.accuracy);
    j["auc_macro_ci95"] = json_interval(iv.auc_macro);
    j["auc_per_class_ci95"] = nlohmann::json::array();
    for (const auto& i : iv.auc_per_class) j["auc_per_class_ci95"].push_back(json_interval(i));
    if (iv.replicates == 0) {
        j["ci_method"] = "DeLong (AUC), Wilson (accuracy)";
    } else {
        j["ci_method"] = "bootstrap over patients, percentile";
        j["bootstrap_replicates"] = iv.replicates;
        j["bootstrap_patients"] = iv.clusters;
        j["bootstrap_seed"] = seed;
    }
}

/// A CSV field, quoted where it must be (RFC 4180).
inline std::string csv_field(const std::string& v) {
    if (v.find_first_of(",\"\n\r") == std::string::npos && (v.empty() || (v.front() != ' ' && v.back() != ' '))) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

/// One row per image: index, source (file or record), patient, the true label (multi-class)
/// or one 0/1 column per label (multi-label; blank where left out), and the score per class or label: what a
/// user needs to run their own statistics (tests check ours against R from it).
inline void write_predictions_csv(const std::filesystem::path& path, std::span<const float> probs, const data::dataset& d) {
    const auto n = d.size(), k = d.num_classes;
    check<value_error>(std::int64_t(probs.size()) == n * k, "write_predictions_csv: ", probs.size(), " scores for ", n, " x ", k);
    const bool mc = d.task == data::task_kind::multiclass;
    auto name = [&](std::int64_t c) {
        return std::size_t(c) < d.class_names.size() && !d.class_names[std::size_t(c)].empty() ? d.class_names[std::size_t(c)]
                                                                                               : std::to_string(c);
    };
    std::ostringstream out;
    out.precision(9);  // a float's scores round-trip
    out << "index,source,patient";
    if (mc) out << ",label";
    else
        for (std::int64_t c = 0; c < k; ++c) out << ',' << csv_field("label_" + name(c));
    for (std::int64_t c = 0; c < k; ++c) out << ',' << csv_field("score_" + name(c));
    out << '\n';
    for (std::int64_t i = 0; i < n; ++i) {
        out << i << ',' << csv_field(d.names[std::size_t(i)]) << ',' << d.patients[std::size_t(i)];
        if (mc) out << ',' << d.labels[std::size_t(i)];
        else
            for (std::int64_t c = 0; c < k; ++c) {  // blank: left out
                const float t = d.targets[std::size_t(i * k + c)];
                out << ',';
                if (!metrics::left_out(t)) out << (t >= 0.5f ? 1 : 0);
            }
        for (std::int64_t c = 0; c < k; ++c) out << ',' << probs[std::size_t(i * k + c)];
        out << '\n';
    }
    write_file_atomically<data::data_error>(path, out.str(), "write_predictions_csv");
}

/// A predictions CSV read back (write_predictions_csv's layout; a user's own file with the
/// same header works too): what stats:: needs to compare two models without running them.
struct predictions {
    bool multiclass = true;
    std::int64_t k = 0;
    std::vector<std::string> sources, class_names;
    std::vector<std::int64_t> patients;
    std::vector<int> labels;      ///< multi-class
    std::vector<float> targets;   ///< multi-label, N x K
    std::vector<float> probs;     ///< N x K
    std::int64_t size() const noexcept { return std::int64_t(patients.size()); }
    stats::scored scores() const {
        return {probs, k, multiclass ? std::span<const int>(labels) : std::span<const int>{},
                multiclass ? std::span<const float>{} : std::span<const float>(targets)};
    }
};

inline predictions read_predictions_csv(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    check<data::data_error>(bool(in), "read_predictions_csv: cannot open ", path.string());
    std::string line;
    check<data::data_error>(data::getline_bounded(in, line, data::default_max_line_bytes, path.string(), 1) && !line.empty(),
                            path.string(), ": empty (no header)");
    const auto head = data::split_csv_line(line, path.string() + ":1");
    check<data::data_error>(head.size() >= 5 && head[0] == "index" && head[1] == "source" && head[2] == "patient", path.string(),
                            ":1: not a predictions CSV (want index,source,patient,label...,score_...)");
    predictions p;
    std::size_t first_score = 3;
    while (first_score < head.size() && head[first_score].rfind("score_", 0) != 0) ++first_score;
    p.k = std::int64_t(head.size() - first_score);
    check<data::data_error>(p.k > 0, path.string(), ":1: no score_ columns");
    p.multiclass = first_score == 4 && head[3] == "label";
    check<data::data_error>(p.multiclass || std::int64_t(first_score - 3) == p.k, path.string(), ":1: ", first_score - 3,
                            " label columns for ", p.k, " score columns");
    for (std::size_t c = first_score; c < head.size(); ++c) p.class_names.push_back(head[c].substr(6));
    auto number = [&](const std::string& f, const std::string& where) {
        std::size_t used = 0;
        double v = 0;
        try {
            v = std::stod(f, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        check<data::data_error>(used == f.size() && !f.empty() && std::isfinite(v), where, ": '", f, "' is not a finite number");
        return v;
    };
    std::map<std::string, std::int64_t> patient_ids;
    for (std::size_t line_no = 2; data::getline_bounded(in, line, data::default_max_line_bytes, path.string(), line_no); ++line_no) {
        if (line.empty() || line == "\r") continue;
        const std::string where = path.string() + ":" + std::to_string(line_no);
        const auto f = data::split_csv_line(line, where);
        check<data::data_error>(f.size() == head.size(), where, ": ", f.size(), " fields, the header has ", head.size());
        p.sources.push_back(f[1]);
        p.patients.push_back(patient_ids.emplace(f[2], std::int64_t(patient_ids.size())).first->second);
        if (p.multiclass) {
            const double l = number(f[3], where);
            check<data::data_error>(l == std::floor(l) && l >= 0 && l < double(p.k), where, ": label ", f[3], " is outside [0, ",
                                    p.k, ")");
            p.labels.push_back(int(l));
        } else {
            for (std::size_t c = 3; c < first_score; ++c)
                p.targets.push_back(f[c].empty() ? std::numeric_limits<float>::quiet_NaN() : float(number(f[c], where)));
        }
        for (std::size_t c = first_score; c < f.size(); ++c) p.probs.push_back(float(number(f[c], where)));
    }
    check<data::data_error>(p.size() > 0, path.string(), ": no predictions");
    return p;
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
        std::size_t m = 0;  // the samples class c counts (multi-label: not left out)
        for (std::int64_t i = 0; i < n; ++i) {
            if (!mc && metrics::left_out(d.targets[std::size_t(i * k + c)])) continue;
            col[m] = probs[std::size_t(i * k + c)];
            pos[m++] = mc ? d.labels[std::size_t(i)] == c : d.targets[std::size_t(i * k + c)] >= 0.5f;
        }
        for (const auto& [fpr, tpr] : metrics::roc_curve(std::span<const float>(col.data(), m), std::span<const bool>(pos.get(), m)))
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
    std::filesystem::path predictions;  ///< where to write per-image scores (write_predictions_csv); empty: nowhere
    /// Intervals: DeLong and Wilson, or with `patient_level` a bootstrap over patients of
    /// this many replicates (images of one patient are not independent observations).
    int bootstrap = 2000;
    std::uint64_t seed = 0;  ///< the bootstrap's
};

/// The intervals evaluate_checkpoint reports: the image-level ones into `images`, and with
/// `opt.patient_level` the patient-level ones into `patients`.
inline void add_evaluation_intervals(nlohmann::json& images, nlohmann::json* patients, const evaluation& e,
                                     const data::dataset& d, const evaluate_options& opt) {
    const stats::bootstrap_options boot{opt.bootstrap, opt.seed};
    if (!opt.patient_level) {
        add_intervals(images, stats::analytic_intervals(e.image_scores(d)));
        return;
    }
    add_intervals(images, stats::bootstrap_intervals(e.image_scores(d), d.patients, boot), opt.seed);
    if (patients) add_intervals(*patients, stats::bootstrap_intervals(e.patient_scores(d.num_classes), e.by_patient.patients, boot), opt.seed);
}

namespace detail {
/// The backbone of a saved model: its metadata over the backbone's defaults (3 channels
/// where the metadata does not say).
template <template <class> class M>
typename models::backbone_traits<M>::config saved_backbone(const std::map<std::string, std::string>& meta) {
    return models::backbone_traits<M>::from_metadata(meta, models::backbone_traits<M>::defaults(3));
}
}  // namespace detail

/// A fine-tuned model's scores on a dataset, with what its file says of it.
struct scored_checkpoint {
    evaluation e;
    std::filesystem::path file;               ///< the weights file read
    std::map<std::string, std::string> meta;  ///< its metadata
    std::vector<std::string> class_names() const {
        std::vector<std::string> names;
        const auto it = meta.find("class-names");
        if (it == meta.end()) return names;
        for (std::size_t start = 0;;) {
            const auto tab = it->second.find('\t', start);
            names.push_back(it->second.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        return names;
    }
};

/// The class names a model file's metadata gives (empty without them).
inline std::vector<std::string> model_class_names(const std::filesystem::path& model) {
    scored_checkpoint s;
    s.meta = safetensors::reader(weights_file(model)).metadata();
    return s.class_names();
}

/// A multi-label `d` with the labels of `model`, matched by name (data::map_labels: the
/// paper's shifted-dataset protocol, e.g. a CheXpert model on NIH ChestX-ray14): label j is
/// the model's j-th, left out wherever `d` lacks it. `d` itself when the names agree, when
/// either is multi-class, or when either has no names. `absent` gets the model's labels
/// `d` lacks; `mapped` says whether anything was remapped.
inline data::dataset with_model_labels(const data::dataset& d, const std::filesystem::path& model, std::vector<std::string>& absent,
                                       bool& mapped) {
    absent.clear();
    mapped = false;
    if (d.task != data::task_kind::multilabel) return d;
    const auto names = model_class_names(model);
    auto unnamed = [](const std::vector<std::string>& v) {  // no names, or some left blank (a MedMNIST .npz)
        return v.empty() || std::any_of(v.begin(), v.end(), [](const std::string& n) { return n.empty(); });
    };
    if (unnamed(names) || unnamed(d.class_names) || names == d.class_names) return d;
    auto out = data::map_labels(d, names, &absent);
    check<data::data_error>(absent.size() < names.size(), "evaluate: ", d.source, " has none of the model's labels (it has ",
                            d.class_names.size(), ": ", d.class_names.empty() ? std::string("?") : d.class_names.front(), ", ...)");
    mapped = true;
    return out;
}

/// A fine-tuned model - a `finetune` run directory (its `selected` checkpoint) or a model
/// file with micle's classifier metadata - run over every image of `d` (unaugmented). The
/// backbone M is the one the model was trained with (a ResNet unless given).
template <template <class> class M = models::resnet, class B>
scored_checkpoint score_checkpoint(context<B>& ctx, const std::filesystem::path& model, const data::dataset& d,
                                   const evaluate_options& opt = {}) {
    check<value_error>(opt.batch >= 1 && opt.workers >= 1, "evaluate: need batch >= 1 and workers >= 1");
    check<value_error>(opt.bootstrap >= 1, "evaluate: need bootstrap >= 1 replicates, got ", opt.bootstrap);
    scored_checkpoint out;
    out.file = weights_file(model);
    const safetensors::reader weights(out.file);
    out.meta = weights.metadata();
    const auto& meta = out.meta;
    check<value_error>(meta.count("classes") && meta.count("task") && meta.count("image-size"), out.file.string(),
                       " is not a fine-tuned micle model (no classes/task/image-size metadata)");
    using learner_t = supervised_learner<B, M, optim::sgd>;
    typename learner_t::config cfg;
    cfg.backbone = detail::saved_backbone<M>(meta);
    cfg.classes = std::stoll(meta.at("classes"));
    cfg.task = meta.at("task") == "multilabel" ? task_type::multilabel : task_type::multiclass;
    cfg.feature_norm = weights.contains("fc_norm.running_mean");  // a linear probe's
    check<data::data_error>(d.num_classes == cfg.classes, "evaluate: ", d.source, " has ", d.num_classes, " classes, the model ",
                            cfg.classes);
    check<data::data_error>((cfg.task == task_type::multilabel) == (d.task == data::task_kind::multilabel), "evaluate: ",
                            d.source, " is a ", d.task == data::task_kind::multilabel ? "multi-label" : "multi-class",
                            " dataset, the model ", meta.at("task"));
    learner_t learner(ctx, cfg);
    auto state = learner.state();
    load_weights(out.file, ctx, state);
    out.e = evaluate(learner, d, std::stoll(meta.at("image-size")), models::backbone_traits<M>::in_channels(cfg.backbone), opt.batch,
                     opt.workers);
    return out;
}

/// `micle evaluate`'s JSON report of a fine-tuned model on `d`: task, model, n, accuracy,
/// auc_macro, auc_per_class, confusion_matrix (multi-class), their 95% intervals
/// (add_evaluation_intervals), patient_level, roc_csv, predictions_csv and class_names
/// where there are some.
template <template <class> class M = models::resnet, class B>
nlohmann::json evaluate_checkpoint(context<B>& ctx, const std::filesystem::path& model, const data::dataset& given,
                                   const evaluate_options& opt = {}) {
    std::vector<std::string> absent;
    bool mapped = false;
    const auto d = with_model_labels(given, model, absent, mapped);
    const auto s = score_checkpoint<M>(ctx, model, d, opt);
    const auto& e = s.e;
    nlohmann::json j{{"task", e.multiclass ? "multiclass" : "multilabel"}, {"model", s.file.string()}};
    j.update(to_json(e.images, e.multiclass));
    nlohmann::json patients;
    if (opt.patient_level) patients = to_json(e.patients, e.multiclass);
    add_evaluation_intervals(j, opt.patient_level ? &patients : nullptr, e, d, opt);
    if (opt.patient_level) j["patient_level"] = patients;
    if (!opt.predictions.empty()) {
        write_predictions_csv(opt.predictions, e.probs, d);
        j["predictions_csv"] = opt.predictions.string();
    }
    if (!opt.roc_csv.empty()) {
        write_roc_csv(opt.roc_csv, e.probs, d);
        j["roc_csv"] = opt.roc_csv.string();
    }
    if (const auto names = s.class_names(); !names.empty()) j["class_names"] = names;
    if (mapped) {
        j["labels_matched_by_name"] = true;
        j["labels_absent"] = absent;  // their AUC is null, and the mean is over the others
    }
    return j;
}

/// A paired difference as JSON: a, b, difference (A - B), ci95, statistic, p.
inline nlohmann::json to_json(const stats::paired_difference& d) {
    return {{"a", json_number(d.a)},         {"b", json_number(d.b)},
            {"difference", json_number(d.difference)}, {"ci95", json_interval(d.ci)},
            {"statistic", json_number(d.statistic)},   {"p", json_number(d.p)}};
}
inline nlohmann::json to_json(const stats::comparison& c, std::uint64_t seed) {
    nlohmann::json j{{"auc_macro", to_json(c.auc_macro)}, {"accuracy", to_json(c.accuracy)}};
    j["auc_per_class"] = nlohmann::json::array();
    for (const auto& d : c.auc_per_class) j["auc_per_class"].push_back(to_json(d));
    if (c.replicates == 0) {
        j["method"] = "DeLong's paired test (AUC), McNemar's test (accuracy)";
        j["accuracy"]["mcnemar"] = {{"a_right_b_wrong", c.mcnemar.a_only}, {"a_wrong_b_right", c.mcnemar.b_only},
                                    {"statistic", json_number(c.mcnemar.statistic)}, {"p", json_number(c.mcnemar.p)}};
    } else {
        j["method"] = "paired bootstrap over patients (percentile interval; p from the replicates' spread)";
        j["bootstrap_replicates"] = c.replicates;
        j["bootstrap_patients"] = c.clusters;
        j["bootstrap_seed"] = seed;
    }
    return j;
}

/// The comparison report of two models' scores on the same samples (`patients`: one id per
/// sample): for A - B, DeLong's paired test per class and of the macro AUC and McNemar's of
/// accuracy (top level); with `opt.patient_level` also the paired bootstrap over patients
/// of the image-level metrics (`bootstrap_over_patients`) and of the patient-level ones,
/// each patient's mean probabilities (`patient_level`).
inline nlohmann::json compare_scores(const stats::scored& a, const stats::scored& b, std::span<const std::int64_t> patients,
                                     const evaluate_options& opt) {
    check<value_error>(opt.bootstrap >= 1, "compare: need bootstrap >= 1 replicates, got ", opt.bootstrap);
    nlohmann::json j{{"task", a.multiclass() ? "multiclass" : "multilabel"}, {"n", a.n()}};
    j.update(to_json(stats::analytic_comparison(a, b), 0));
    if (opt.patient_level) {
        const stats::bootstrap_options boot{opt.bootstrap, opt.seed};
        j["bootstrap_over_patients"] = to_json(stats::bootstrap_comparison(a, b, patients, boot), opt.seed);
        auto aggregate = [&](const stats::scored& s) {
            return metrics::aggregate_by_patient(s.probs, s.k, patients, s.multiclass() ? s.labels : std::span<const int>{},
                                                 s.multiclass() ? std::span<const float>{} : s.targets);
        };
        const auto pa = aggregate(a), pb = aggregate(b);
        auto scores = [&](const metrics::patient_aggregate& g) {
            return stats::scored{g.probs, a.k, a.multiclass() ? std::span<const int>(g.labels) : std::span<const int>{},
                                 a.multiclass() ? std::span<const float>{} : std::span<const float>(g.targets)};
        };
        auto p = to_json(stats::bootstrap_comparison(scores(pa), scores(pb), pa.patients, boot), opt.seed);
        p["n"] = pa.patients.size();
        j["patient_level"] = p;
    }
    return j;
}

/// `micle compare --model A --model B`: two fine-tuned models run over the same images of
/// `d`, compared as compare_scores does.
template <template <class> class M = models::resnet, class B>
nlohmann::json compare_checkpoints(context<B>& ctx, const std::filesystem::path& model_a, const std::filesystem::path& model_b,
                                   const data::dataset& given, const evaluate_options& opt = {}) {
    std::vector<std::string> absent;
    bool mapped = false;
    const auto d = with_model_labels(given, model_a, absent, mapped);
    const auto a = score_checkpoint<M>(ctx, model_a, d, opt), b = score_checkpoint<M>(ctx, model_b, d, opt);
    auto j = compare_scores(a.e.image_scores(d), b.e.image_scores(d), d.patients, opt);
    j["model_a"] = a.file.string();
    j["model_b"] = b.file.string();
    if (const auto names = a.class_names(); !names.empty()) j["class_names"] = names;
    return j;
}

/// `micle compare --predictions A.csv --predictions B.csv`: two predictions files of the
/// same images (the same rows: sources, patients and labels), compared as compare_scores does.
inline nlohmann::json compare_predictions(const std::filesystem::path& file_a, const std::filesystem::path& file_b,
                                          const evaluate_options& opt = {}) {
    const auto a = read_predictions_csv(file_a), b = read_predictions_csv(file_b);
    check<data::data_error>(a.size() == b.size() && a.k == b.k && a.multiclass == b.multiclass, "compare: ", file_a.string(),
                            " holds ", a.size(), " x ", a.k, " scores, ", file_b.string(), " ", b.size(), " x ", b.k);
    for (std::int64_t i = 0; i < a.size(); ++i) {
        const auto u = std::size_t(i);
        check<data::data_error>(a.sources[u] == b.sources[u] && a.patients[u] == b.patients[u], "compare: row ", i + 2, " of ",
                                file_a.string(), " is ", a.sources[u], ", of ", file_b.string(), " ", b.sources[u],
                                ": not the same images in the same order");
    }
    const bool same_targets = std::equal(a.targets.begin(), a.targets.end(), b.targets.begin(), b.targets.end(),
                                         [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); });
    check<data::data_error>(a.labels == b.labels && same_targets, "compare: ", file_a.string(), " and ", file_b.string(),
                            " give different labels");
    auto j = compare_scores(a.scores(), b.scores(), a.patients, opt);
    j["model_a"] = file_a.string();
    j["model_b"] = file_b.string();
    j["class_names"] = a.class_names;
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
template <template <class> class M, class B>
class frozen_backbone {
public:
    using backend = B;
    frozen_backbone(context<B>& ctx, const typename models::backbone_traits<M>::config& cfg) : ctx_(ctx), net_(ctx, cfg, 0) {}
    const tensor<B>& embed(const tensor<B>& images) { return net_.forward(ctx_, images, false); }
    context<B>& ctx() noexcept { return ctx_; }
    nn::state_list<B> state() { return net_.state(); }

private:
    context<B>& ctx_;
    M<B> net_;
};
}  // namespace detail

/// The backbone features of every image of `d` (unaugmented, resized to the model's image
/// size, in dataset order) under the weights of `model`: a `pretrain` or `finetune` run
/// directory or a model.safetensors with micle's metadata. Heads in the file are ignored;
/// every backbone tensor must be there.
template <template <class> class M = models::resnet, class B>
embedding embed_checkpoint(context<B>& ctx, const std::filesystem::path& model, const data::dataset& d,
                           const evaluate_options& opt = {}) {
    check<value_error>(opt.batch >= 1 && opt.workers >= 1, "embed: need batch >= 1 and workers >= 1");
    embedding out;
    out.file = weights_file(model);
    const auto meta = safetensors::reader(out.file).metadata();
    check<value_error>(meta.count("image-size") != 0, out.file.string(),
                       " has no image-size metadata (not written by micle pretrain or finetune)");
    const auto cfg = detail::saved_backbone<M>(meta);
    out.image_size = std::stoll(meta.at("image-size"));
    detail::frozen_backbone<M, B> net(ctx, cfg);
    auto state = net.state();
    const auto r = load_weights(out.file, ctx, state, {false, true});
    check<data::data_error>(r.missing.empty(), "embed: ", out.file.string(), " lacks ", r.missing.size(),
                            " backbone tensors, the first ", r.missing.empty() ? "" : r.missing.front());
    out.features = embed_all(net, data::labeled_images(d, data::augment_config::eval(out.image_size),
                                                       models::backbone_traits<M>::in_channels(cfg), 0, false),
                             opt.batch, opt.workers, &out.dim);
    return out;
}

}  // namespace micle::train
