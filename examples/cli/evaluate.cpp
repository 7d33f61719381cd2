// micle evaluate: the paper's metrics of a fine-tuned model on a split, as a JSON report.
#include <memory>

#include "batches.hpp"
#include "micle/data/loader.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/supervised_learner.hpp"

namespace micle::cli {

const char* evaluate_usage =
    "usage: micle evaluate --data SPEC --model CKPT --report FILE.json [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --model CKPT           a `micle finetune` run directory or its model.safetensors\n"
    "  --split train|val|test (test)\n"
    "  --report FILE.json     task, n, accuracy, auc_macro, auc_per_class, confusion_matrix (multi-class);\n"
    "                         with --patient-level also the same after averaging each patient's probabilities\n"
    "  --patient-level  --batch-size N (128)  --workers W (2)\n"
    "Also writes FILE.roc.csv (class,fpr,tpr) for micle plot.\n";

namespace {

std::string report_json(const metrics::classification_report& r, bool multiclass) {
    std::string s = "{\"n\": " + std::to_string(r.n) + ", \"accuracy\": " + json_number(r.accuracy) +
                    ", \"auc_macro\": " + json_number(r.auc_macro) + ", \"auc_per_class\": [";
    for (std::size_t i = 0; i < r.auc_per_class.size(); ++i) s += (i ? ", " : "") + json_number(r.auc_per_class[i]);
    s += "]";
    if (multiclass) {
        s += ", \"confusion_matrix\": [";
        for (std::size_t i = 0; i < r.confusion.size(); ++i) {
            s += i ? ", [" : "[";
            for (std::size_t j = 0; j < r.confusion[i].size(); ++j) s += (j ? ", " : "") + std::to_string(r.confusion[i][j]);
            s += "]";
        }
        s += "]";
    }
    return s + "}";
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

    const auto d = load_split(o, o.str("split", "test"));
    if (d.num_classes != cfg.classes)
        throw data::data_error(micle::detail::cat("--data has ", d.num_classes, " classes, the model ", cfg.classes));
    const std::int64_t size = std::stoll(meta.at("image-size")), n = o.integer("batch-size", 128);
    const int workers = int(o.integer("workers", 2));
    std::vector<std::int64_t> order(static_cast<std::size_t>(d.size()));
    std::iota(order.begin(), order.end(), 0);
    const auto aug = data::augment_config::eval(size);
    data::prefetch_loader<labeled_batch> loader(
        [&](std::int64_t b) { return make_labeled_batch(d, order, b, n, aug, cfg.backbone.in_channels, 0, 0); },
        (d.size() + n - 1) / n, workers, 2 * workers);
    std::vector<float> probs;
    while (auto batch = loader.next()) {
        const auto p = learner.predict(tensor<backend>::from_host(ctx, batch->dims, batch->pixels));
        probs.insert(probs.end(), p.begin(), p.end());
    }
    const bool mc = cfg.task == task_type::multiclass;
    const auto r = mc ? metrics::multiclass(probs, d.labels, cfg.classes) : metrics::multilabel(probs, d.targets, cfg.classes);
    std::string json = "{\"task\": \"" + std::string(mc ? "multiclass" : "multilabel") + "\", \"split\": \"" +
                       o.str("split", "test") + "\", \"model\": \"" + model.string() + "\", ";
    const std::string body = report_json(r, mc);
    json += body.substr(1, body.size() - 2);
    if (o.has("patient-level")) {
        const auto a = metrics::aggregate_by_patient(probs, cfg.classes, d.patients, mc ? std::span<const int>(d.labels) : std::span<const int>{},
                                                     mc ? std::span<const float>{} : std::span<const float>(d.targets));
        const auto rp = mc ? metrics::multiclass(a.probs, a.labels, cfg.classes) : metrics::multilabel(a.probs, a.targets, cfg.classes);
        json += ", \"patient_level\": " + report_json(rp, mc);
    }
    // ROC curves (one-vs-rest per class, or per label) for plotting: class,fpr,tpr lines.
    const fs::path roc_path = fs::path(report_path).replace_extension(".roc.csv");
    {
        std::ofstream roc(roc_path);
        roc << "class,fpr,tpr\n";
        const auto n = d.size();
        std::vector<float> col(static_cast<std::size_t>(n));
        std::unique_ptr<bool[]> pos(new bool[std::size_t(std::max<std::int64_t>(n, 1))]);
        for (std::int64_t c = 0; c < cfg.classes; ++c) {
            for (std::int64_t i = 0; i < n; ++i) {
                col[std::size_t(i)] = probs[std::size_t(i * cfg.classes + c)];
                pos[std::size_t(i)] = mc ? d.labels[std::size_t(i)] == c : d.targets[std::size_t(i * cfg.classes + c)] >= 0.5f;
            }
            for (const auto& [fpr, tpr] : metrics::roc_curve(col, std::span<const bool>(pos.get(), std::size_t(n))))
                roc << c << ',' << fpr << ',' << tpr << '\n';
        }
        if (!roc) throw data::data_error("cannot write " + roc_path.string());
    }
    json += ", \"roc_csv\": \"" + roc_path.string() + "\"";
    if (meta.count("class-names")) {
        json += ", \"class_names\": [";
        std::string names = meta.at("class-names"), item;
        std::size_t start = 0;
        bool first = true;
        while (start <= names.size()) {
            const auto tab = names.find('\t', start);
            item = names.substr(start, tab == std::string::npos ? std::string::npos : tab - start);
            std::string escaped;
            for (char ch : item) {
                if (ch == '"' || ch == '\\') escaped += '\\';
                escaped += ch;
            }
            json += (first ? "\"" : ", \"") + escaped + "\"";
            first = false;
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        json += "]";
    }
    json += "}\n";
    const auto tmp = report_path.string() + ".tmp";
    {
        std::ofstream out(tmp);
        out << json;
        if (!out) throw data::data_error("cannot write " + tmp);
    }
    fs::rename(tmp, report_path);
    std::printf("%s: n %lld  accuracy %.4f  macro AUC %.4f  -> %s\n", o.str("split", "test").c_str(), (long long)r.n,
                r.accuracy, r.auc_macro, report_path.c_str());
    return 0;
}

}  // namespace micle::cli
