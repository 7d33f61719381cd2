// micle embed: the backbone features of a checkpoint on a split (train::embed_checkpoint),
// with the labels, as NumPy .npy files - for a probe, kNN or a plot in another tool.
#include "common.hpp"
#include "micle/data/npz.hpp"
#include "micle/train/evaluation.hpp"

namespace micle::cli {

const char* embed_usage =
    "usage: micle embed --data SPEC --model CKPT --out PREFIX [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --model CKPT           a `micle pretrain` or `micle finetune` run directory, or a model.safetensors\n"
    "  --split train|val|test (test)\n"
    "  --out PREFIX           writes PREFIX.features.npy (float32, N x D backbone features of the unaugmented\n"
    "                         images at the model's size, in the data's order) and PREFIX.labels.npy (int64:\n"
    "                         N class indices, or N x K 0/1 targets for multi-label data, -1 where left out)\n"
    "  --batch-size N (128)  --workers W (2)\n";

int embed(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({"data", "model", "split", "out", "batch-size", "workers"}), {});
    if (o.help()) return std::printf("%s%s%s", embed_usage, data_usage, backend_usage), 0;
    one_process("micle embed");
    const fs::path model = o.required("model");
    const std::string prefix = o.required("out"), split = o.str("split", "test");
    train::evaluate_options opt;
    opt.batch = o.integer("batch-size", 128);
    opt.workers = int(o.integer("workers", 2));
    if (opt.batch < 1 || opt.workers < 1) throw usage_error("need --batch-size >= 1 and --workers >= 1");
    const auto d = load_split(o, split);
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    const auto e = train::embed_checkpoint(ctx, model, d, opt);

    const auto n = std::int64_t(d.size());
    std::vector<std::int64_t> labels, label_shape{n};
    if (d.task == data::task_kind::multiclass) {
        labels.assign(d.labels.begin(), d.labels.end());
    } else {
        label_shape.push_back(d.num_classes);
        for (float t : d.targets) labels.push_back(data::is_left_out(t) ? -1 : (t > 0.5f ? 1 : 0));
    }
    const fs::path features_path = prefix + ".features.npy", labels_path = prefix + ".labels.npy";
    if (features_path.has_parent_path()) fs::create_directories(features_path.parent_path());
    data::write_npy(features_path, "<f4", {n, e.dim}, std::as_bytes(std::span(e.features)));
    data::write_npy(labels_path, "<i8", label_shape, std::as_bytes(std::span(labels)));
    std::printf("%s: %lld images -> %lld-d features of %s at %lld px -> %s, %s\n", split.c_str(), (long long)n,
                (long long)e.dim, e.file.c_str(), (long long)e.image_size, features_path.c_str(), labels_path.c_str());
    return 0;
}

}  // namespace micle::cli
