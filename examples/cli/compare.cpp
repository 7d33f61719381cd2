// micle compare: two fine-tuned models on the same images (train::compare_checkpoints):
// the difference of each metric with its 95% interval and p-value, as a JSON report.
#include "common.hpp"
#include "micle/train/evaluation.hpp"

namespace micle::cli {

const char* compare_usage =
    "usage: micle compare --data SPEC --model A --model B --report FILE.json [options]\n"
    "       micle compare --predictions A.csv --predictions B.csv --report FILE.json [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --model A --model B    two `micle finetune` run directories or model.safetensors files; differences are A - B\n"
    "  --predictions A.csv --predictions B.csv\n"
    "                         instead: two `micle evaluate --predictions` files of the same images (nothing is run)\n"
    "  --split train|val|test (test)\n"
    "  --report FILE.json     per class and macro AUC: DeLong's paired test (difference, ci95, statistic, p);\n"
    "                         accuracy: McNemar's test (and the counts of images only one model gets right)\n"
    "  --patient-level        also the paired bootstrap over patients, of the image-level metrics\n"
    "                         (bootstrap_over_patients) and of the patient-level ones (patient_level)\n"
    "  --bootstrap N (2000)   its replicates  --seed S (0) its seed\n"
    "  --batch-size N (128)  --workers W (2)\n";

namespace {
void print_line(const char* what, const nlohmann::json& d, const std::string& test) {
    auto num = [](const nlohmann::json& v) { return v.is_number() ? fixed4(v.get<double>()) : std::string("undefined"); };
    const auto& ci = d["ci95"];
    const bool has_ci = ci[0].is_number() && ci[1].is_number();
    const double p = d["p"].is_number() ? d["p"].get<double>() : NAN;
    std::printf("%-22s A %s  B %s  A-B %s  95%% [%s, %s]  p %s%s  (%s)\n", what, num(d["a"]).c_str(), num(d["b"]).c_str(),
                d["difference"].is_number() ? micle::detail::cat(d["difference"].get<double>() >= 0 ? "+" : "", num(d["difference"])).c_str()
                                            : "undefined",
                has_ci ? num(ci[0]).c_str() : "-", has_ci ? num(ci[1]).c_str() : "-", std::isnan(p) ? "-" : micle::detail::cat(p < 1e-4 ? "<0.0001" : fixed4(p)).c_str(),
                p < 0.05 ? " *" : "", test.c_str());
}
void print_comparison(const nlohmann::json& j, const std::vector<std::string>& names, const char* auc_test, const char* acc_test,
                      const char* level) {
    print_line(micle::detail::cat("macro AUC", level).c_str(), j["auc_macro"], auc_test);
    for (std::size_t c = 0; c < j["auc_per_class"].size(); ++c)
        print_line(micle::detail::cat("  AUC ", c < names.size() ? names[c] : std::to_string(c)).c_str(), j["auc_per_class"][c],
                   auc_test);
    print_line(micle::detail::cat("accuracy", level).c_str(), j["accuracy"], acc_test);
}
}  // namespace

int compare(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "predictions", "split", "report", "batch-size", "workers", "bootstrap", "seed"}),
                    {"patient-level"});
    if (o.help()) return std::printf("%s%s%s", compare_usage, data_usage, backend_usage), 0;
    one_process("micle compare");
    const auto models = o.values("model"), files = o.values("predictions");
    if (!files.empty() && (!models.empty() || o.has("data") || o.has("split")))
        throw usage_error("give either --data with two --model, or two --predictions");
    if (files.empty() && models.size() != 2) throw usage_error(micle::detail::cat("give --model twice (A, then B), got ", models.size()));
    if (!files.empty() && files.size() != 2) throw usage_error(micle::detail::cat("give --predictions twice (A, then B), got ", files.size()));
    const fs::path report = o.required("report");
    const std::string split = o.str("split", "test");
    const auto opt = evaluate_options_from(o);
    nlohmann::json j;
    if (files.empty()) {
        warn_if_leaks(o, "compare");
        context<backend> ctx = make_context(o);
        std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
        j = train::compare_checkpoints(ctx, models[0], models[1], load_split(o, split), opt);
    } else {
        j = train::compare_predictions(files[0], files[1], opt);
    }
    if (files.empty()) j["split"] = split;
    train::write_json(report, j);
    const auto names = j.contains("class_names") ? j["class_names"].get<std::vector<std::string>>() : std::vector<std::string>{};
    std::printf("%s: n %lld, A = %s, B = %s; * p < 0.05\n", files.empty() ? split.c_str() : "predictions", j["n"].get<long long>(), j["model_a"].get<std::string>().c_str(),
                j["model_b"].get<std::string>().c_str());
    print_comparison(j, names, "DeLong, paired", "McNemar", "");
    if (opt.patient_level) {
        print_comparison(j["bootstrap_over_patients"], names, "patient bootstrap", "patient bootstrap", "");
        print_comparison(j["patient_level"], names, "patient bootstrap", "patient bootstrap", " per patient");
    }
    std::printf("-> %s\n", report.c_str());
    return 0;
}

}  // namespace micle::cli
