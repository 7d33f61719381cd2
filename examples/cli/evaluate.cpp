// micle evaluate: the paper's metrics of a fine-tuned model on a split (train::evaluate),
// as a JSON report.
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

int evaluate(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "split", "report", "batch-size", "workers"}), {"patient-level"});
    if (o.help()) {
        std::printf("%s%s%s", evaluate_usage, data_usage, backend_usage);
        return 0;
    }
    const fs::path model = train::weights_file(o.required("model"));
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
    const auto e = train::evaluate(learner, d, size, cfg.backbone.in_channels, n, workers);
    nlohmann::json j{{"task", e.multiclass ? "multiclass" : "multilabel"}, {"split", split}, {"model", model.string()}};
    j.update(train::to_json(e.images, e.multiclass));
    if (o.has("patient-level")) j["patient_level"] = train::to_json(e.patients, e.multiclass);
    const fs::path roc_path = fs::path(report_path).replace_extension(".roc.csv");
    train::write_roc_csv(roc_path, e.probs, d);
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
    std::printf("%s: n %lld  accuracy %.4f  macro AUC %.4f  -> %s\n", split.c_str(), (long long)e.images.n, e.images.accuracy,
                e.images.auc_macro, report_path.c_str());
    return 0;
}

}  // namespace micle::cli
