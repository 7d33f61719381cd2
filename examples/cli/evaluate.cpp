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
    "  --report FILE.json     task, n, accuracy, auc_macro, auc_per_class, confusion_matrix (multi-class);\n"
    "                         with --patient-level also the same after averaging each patient's probabilities\n"
    "  --patient-level  --batch-size N (128)  --workers W (2)\n"
    "Also writes FILE.roc.csv (class,fpr,tpr) for micle plot.\n";

int evaluate(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "split", "report", "batch-size", "workers"}), {"patient-level"});
    if (o.help()) return std::printf("%s%s%s", evaluate_usage, data_usage, backend_usage), 0;
    one_process("micle evaluate");
    const fs::path model = o.required("model"), report = o.required("report");
    const std::string split = o.str("split", "test");
    train::evaluate_options opt{o.integer("batch-size", 128), int(o.integer("workers", 2)), o.has("patient-level"),
                                fs::path(report).replace_extension(".roc.csv")};
    if (opt.batch < 1 || opt.workers < 1) throw usage_error("need --batch-size >= 1 and --workers >= 1");
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    auto j = train::evaluate_checkpoint(ctx, model, load_split(o, split), opt);
    j["split"] = split;
    train::write_json(report, j);
    std::printf("%s: n %lld  accuracy %.4f  macro AUC %.4f  -> %s\n", split.c_str(), j["n"].get<long long>(),
                j["accuracy"].is_number() ? j["accuracy"].get<double>() : NAN,
                j["auc_macro"].is_number() ? j["auc_macro"].get<double>() : NAN, report.c_str());
    return 0;
}

}  // namespace micle::cli
