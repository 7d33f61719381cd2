// micle evaluate: the paper's metrics of a fine-tuned model on a split, as a JSON report.
#include <memory>

#include "micle/train/supervised_learner.hpp"

#include "common.hpp"

namespace micle::cli {

const char* evaluate_usage =
    "usage: micle evaluate --data SPEC --model CKPT --report FILE.json [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --model CKPT           a `micle finetune` run directory (its selected checkpoint) or a model.safetensors\n"
    "  --split train|val|test (test)\n"
    "  --report FILE.json     task, n, accuracy, auc_macro, auc_per_class, confusion_matrix (multi-class);\n"
    "                         with --patient-level also the same after averaging each patient's probabilities\n"
    "  --patient-level  --batch-size N (128)  --workers W (2)\n"
    "Also writes FILE.roc.csv (class,fpr,tpr) for micle plot.\n";

namespace {

/// A number for JSON: NaN (an AUC of a class absent from the split) becomes null.
nlohmann::json number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json report_json(const metrics::classification_report& r, bool multiclass) {
    nlohmann::json j{{"n", r.n}, {"accuracy", number(r.accuracy)}, {"auc_macro", number(r.auc_macro)}};
    j["auc_per_class"] = nlohmann::json::array();
    for (double a : r.auc_per_class) j["auc_per_class"].push_back(number(a));
    if (multiclass) j["confusion_matrix"] = r.confusion;
    return j;
}

/// One-vs-rest ROC curves (per class, or per label) as class,fpr,tpr lines, for micle plot.
void write_roc(const fs::path& path, const std::vector<float>& probs, const data::dataset& d, std::int64_t classes, bool mc) {
    std::ofstream roc(path);
    roc << "class,fpr,tpr\n";
    const auto n = d.size();
    std::vector<float> col(static_cast<std::size_t>(n));
    std::unique_ptr<bool[]> pos(new bool[std::size_t(std::max<std::int64_t>(n, 1))]);
    for (std::int64_t c = 0; c < classes; ++c) {
        for (std::int64_t i = 0; i < n; ++i) {
            col[std::size_t(i)] = probs[std::size_t(i * classes + c)];
            pos[std::size_t(i)] = mc ? d.labels[std::size_t(i)] == c : d.targets[std::size_t(i * classes + c)] >= 0.5f;
        }
        for (const auto& [fpr, tpr] :
             metrics::roc_curve(col, std::span<const bool>(pos.get(), std::size_t(n))))
            roc << c << ',' << fpr << ',' << tpr << '\n';
    }
    if (!roc) throw data::data_error("cannot write " + path.string());
}

}  // namespace

int evaluate(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "split", "report", "batch-size", "workers"}), {"patient-level"});
    if (o.help()) {
        std::printf("%s%s%s", evaluate_usage, data_usage, backend_usage);
        return 0;
    }
    const fs::path model = model_file(o.required("model"));
    const fs::path report_path = o.required("report");
    const auto meta = safetensors::reader(model).metadata();
    if (!meta.count("classes") || !meta.count("task"))
        throw usage_error("--model " + model.string() + " is not a fine-tuned micle model (no classes/task metadata)");
    using learner_t = supervised_learner<backend, models::resnet, optim::sgd>;
    learner_t::config cfg;
    cfg.backbone = backbone_from(options(0, nullptr, 0, {}, {}), meta);
    cfg.classes = std::stoll(meta.at("classes"));
    cfg.task = meta.at("task") == "multilabel" ? task_type::multilabel : task_type::multiclass;
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    learner_t learner(ctx, cfg);
    auto state = learner.state();
    train::load_weights(model, ctx, state);

    const std::string split = o.str("split", "test");
    const auto d = load_split(o, split);
    if (d.num_classes != cfg.classes)
        throw data::data_error(micle::detail::cat("--data has ", d.num_classes, " classes, the model ", cfg.classes));
    const std::int64_t size = std::stoll(meta.at("image-size")), n = o.integer("batch-size", 128);
    const int workers = int(o.integer("workers", 2));
    if (n < 1 || workers < 1) throw usage_error("need --batch-size >= 1 and --workers >= 1");
    const auto probs = train::predict_all(
        learner, data::labeled_images(d, data::augment_config::eval(size), cfg.backbone.in_channels, 0, false), n, workers);
    const bool mc = cfg.task == task_type::multiclass;
    const auto r = mc ? metrics::multiclass(probs, d.labels, cfg.classes) : metrics::multilabel(probs, d.targets, cfg.classes);
    nlohmann::json j{{"task", mc ? "multiclass" : "multilabel"}, {"split", split}, {"model", model.string()}};
    j.update(report_json(r, mc));
    if (o.has("patient-level")) {
        const auto a = metrics::aggregate_by_patient(probs, cfg.classes, d.patients, mc ? std::span<const int>(d.labels) : std::span<const int>{},
                                                     mc ? std::span<const float>{} : std::span<const float>(d.targets));
        const auto rp = mc ? metrics::multiclass(a.probs, a.labels, cfg.classes) : metrics::multilabel(a.probs, a.targets, cfg.classes);
        j["patient_level"] = report_json(rp, mc);
    }
    const fs::path roc_path = fs::path(report_path).replace_extension(".roc.csv");
    write_roc(roc_path, probs, d, cfg.classes, mc);
    j["roc_csv"] = roc_path.string();
    if (meta.count("class-names")) {
        std::vector<std::string> names;
        const std::string& all = meta.at("class-names");
        for (std::size_t start = 0;;) {
            const auto tab = all.find('\t', start);
            names.push_back(all.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        j["class_names"] = names;
    }
    const auto tmp = report_path.string() + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(1) << '\n';
        if (!out) throw data::data_error("cannot write " + tmp);
    }
    fs::rename(tmp, report_path);
    std::printf("%s: n %lld  accuracy %.4f  macro AUC %.4f  -> %s\n", split.c_str(), (long long)r.n, r.accuracy, r.auc_macro,
                report_path.c_str());
    return 0;
}

}  // namespace micle::cli
