// micle evaluate: the paper's metrics of a fine-tuned model on a split
// (train::evaluate_checkpoint), as a JSON report.
#include "common.hpp"
#include "micle/train/evaluation.hpp"

namespace micle::cli {

const char* evaluate_usage =
    "usage: micle evaluate --data SPEC --model CKPT --report FILE.json [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --model CKPT           a `micle finetune` run directory (its selected checkpoint) or a model.safetensors\n"
    "  --split train|val|test (test)\n"
    "  --report FILE.json     task, n, accuracy, auc_macro, auc_per_class, confusion_matrix (multi-class), each\n"
    "                         with its 95% interval (accuracy_ci95, auc_macro_ci95, auc_per_class_ci95); with\n"
    "                         --patient-level also patient_level: the same after averaging each patient's probabilities\n"
    "  --patient-level        intervals from a bootstrap over patients (a patient's images resampled together)\n"
    "                         instead of DeLong (AUC) and Wilson (accuracy), which treat images as independent\n"
    "  --bootstrap N (2000)   its replicates  --seed S (0) its seed\n"
    "  --predictions FILE.csv one row per image: index, source, patient, label(s), score per class\n"
    "  --batch-size N (128)  --workers W (2)\n"
    "Also writes FILE.roc.csv (class,fpr,tpr) for micle plot.\n";

int evaluate(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "split", "report", "batch-size", "workers", "bootstrap", "seed", "predictions"}), {"patient-level"});
    if (o.help()) return std::printf("%s%s%s", evaluate_usage, data_usage, backend_usage), 0;
    one_process("micle evaluate");
    const fs::path model = o.required("model"), report = o.required("report");
    const std::string split = o.str("split", "test");
    auto opt = evaluate_options_from(o);
    opt.roc_csv = fs::path(report).replace_extension(".roc.csv");
    opt.predictions = o.str("predictions");
    warn_if_leaks(o, "evaluate");
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    auto j = train::evaluate_checkpoint(ctx, model, load_split(o, split), opt);
    j["split"] = split;
    train::write_json(report, j);
    auto ci = [&](const nlohmann::json& r, const char* key) {
        const auto& i = r[std::string(key) + "_ci95"];
        return i[0].is_number() && i[1].is_number() ? micle::detail::cat(" [", fixed4(i[0].get<double>()), ", ", fixed4(i[1].get<double>()), "]")
                                                    : std::string(" [undefined]");
    };
    auto num = [](const nlohmann::json& v) { return v.is_number() ? fixed4(v.get<double>()) : std::string("undefined"); };
    std::printf("%s: n %lld  accuracy %s%s  macro AUC %s%s (95%%: %s) -> %s\n", split.c_str(), j["n"].get<long long>(),
                num(j["accuracy"]).c_str(), ci(j, "accuracy").c_str(), num(j["auc_macro"]).c_str(), ci(j, "auc_macro").c_str(),
                j["ci_method"].get<std::string>().c_str(), report.c_str());
    if (opt.patient_level) {
        const auto& p = j["patient_level"];
        std::printf("%s, per patient: n %lld  accuracy %s%s  macro AUC %s%s\n", split.c_str(), p["n"].get<long long>(),
                    num(p["accuracy"]).c_str(), ci(p, "accuracy").c_str(), num(p["auc_macro"]).c_str(), ci(p, "auc_macro").c_str());
    }
    return 0;
}

}  // namespace micle::cli
