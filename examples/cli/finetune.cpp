// micle finetune: supervised fine-tuning or a linear probe on a fraction of the labels -
// argument parsing, then micle::train::fit.
#include "micle/train/supervised_learner.hpp"

#include "common.hpp"

namespace micle::cli {

const char* finetune_usage =
    "usage: micle finetune --data SPEC --out DIR [--init CKPT] [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --init CKPT            pretrained weights: a micle run directory or a .safetensors file (torchvision names);\n"
    "                         without it the backbone starts from random weights (the supervised baseline)\n"
    "  --out DIR              run directory\n"
    "  --label-fraction F     fraction of the training patients whose labels are used, stratified by label (1.0)\n"
    "  --linear-probe         train only a linear classifier on frozen features (computed once)\n"
    "  --epochs E (10)  --batch-size N (64)  --lr LR (0.1, sgd: LR x N / 256)  --head-lr-scale X (1)\n"
    "  --optimizer sgd|adamw (sgd)  --weight-decay WD (sgd 1e-4, adamw 1e-2)\n"
    "  --image-size S, --arch, --width, --stem, --base-channels, --channels: default to the --init checkpoint's\n"
    "                         (--channels: else the data's)\n"
    "  --max-samples N        draw the labelled fraction from a seeded random pool of N training images\n"
    "  --pool-seed S (0)      the seed of that pool (keep it fixed across fractions and methods)\n"
    "  --val-every K          every K epochs, accuracy and AUC on the val split -> metrics.jsonl\n"
    "  --select last|best     the run's model: its last checkpoint, or the best by val AUC (needs --val-every)\n"
    "  --workers W (2)  --seed S (0)  --resume  --checkpoint-every N  --keep-last K (1)\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n";

namespace {

template <template <class> class Opt>
int run_finetune(const options& o, typename Opt<backend>::config opt_cfg, float lr) {
    using learner_t = supervised_learner<backend, models::resnet, Opt>;
    const fs::path out = o.required("out");
    const std::uint64_t seed = std::uint64_t(o.integer("seed", 0));
    std::map<std::string, std::string> init_meta;
    if (o.has("init")) init_meta = safetensors::reader(train::weights_file(o.str("init"))).metadata();
    const std::int64_t size = o.integer("image-size", init_meta.count("image-size") ? std::stoll(init_meta["image-size"]) : 224);
    const std::int64_t n = o.integer("batch-size", 64);
    const double fraction = o.number("label-fraction", 1.0);
    const bool probe = o.has("linear-probe");
    const std::string select = o.str("select", "last");
    if (size < 8) throw usage_error("need --image-size >= 8");
    if (probe && !o.has("init")) throw usage_error("--linear-probe needs --init (a probe of random features is meaningless)");
    if (select != "last" && select != "best") throw usage_error("--select must be last or best");
    if (select == "best" && !o.has("val-every")) throw usage_error("--select best chooses by val AUC: give --val-every K");

    const auto full =
        data::random_subset(load_split(o, "train"), o.integer("max-samples", INT64_MAX), std::uint64_t(o.integer("pool-seed", 0)));
    const auto chosen = data::label_fraction(full, fraction, seed);
    const auto labelled = full.subset(chosen);
    fs::create_directories(out);
    {
        std::ofstream ids(out / "label_ids.txt");
        ids << "# training samples whose labels are used: fraction " << fraction << " of the patients, seed " << seed << "\n";
        for (auto i : chosen) ids << i << "\n";
    }

    typename learner_t::config cfg;
    cfg.backbone = backbone_from(o, init_meta, data_channels(labelled, o));
    cfg.classes = labelled.num_classes;
    cfg.task = labelled.task == data::task_kind::multiclass ? task_type::multiclass : task_type::multilabel;
    cfg.optimizer = opt_cfg;
    cfg.head_lr_scale = float(o.number("head-lr-scale", 1.0));
    cfg.freeze_backbone = probe;
    cfg.seed = seed;
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    learner_t learner(ctx, cfg);
    if (o.has("init") && !(o.has("resume") && fs::exists(out / "latest")) &&
        init_unless_resuming(o, out, ctx, learner.backbone().state()) == 0)
        throw data::data_error("--init " + train::weights_file(o.str("init")).string() + ": no backbone tensor matched");

    auto fo = fit_options_from(o, out, lr);
    fo.warmup_steps = 0;
    fo.metadata = models::resnet_metadata(cfg.backbone, size);
    fo.metadata["classes"] = std::to_string(cfg.classes);
    fo.metadata["task"] = cfg.task == task_type::multiclass ? "multiclass" : "multilabel";
    fo.metadata["label-fraction"] = micle::detail::cat(fraction);
    fo.metadata["linear-probe"] = probe ? "1" : "0";
    std::string names;
    for (const auto& c : labelled.class_names) names += (names.empty() ? "" : "\t") + c;
    fo.metadata["class-names"] = names;
    if (select == "best") fo.best_metric = "val_auc";
    write_config(out, {{"command", "finetune"}, {"init", o.str("init")}, {"label_fraction", fraction},
                       {"labelled_images", labelled.size()}, {"linear_probe", probe}, {"epochs", fo.epochs}, {"batch_size", n},
                       {"lr", lr}, {"image_size", size}, {"select", select}, {"seed", seed}});

    std::optional<train::validation<learner_t>> val;
    if (o.has("val-every")) {
        if (o.integer("val-every", 1) < 1) throw usage_error("--val-every must be >= 1");
        val.emplace(learner, eval_split(o, "val", "--val-every", size, cfg.backbone.in_channels), o.integer("val-every", 1), 128,
                    fo.workers);
    }
    train::fit_result r;
    if (probe) {
        // The backbone is frozen and the views are not augmented: features are computed once.
        std::int64_t dim = 0;
        auto features = train::embed_all(
            learner, data::labeled_images(labelled, data::augment_config::eval(size), cfg.backbone.in_channels, seed, false), n,
            fo.workers, &dim);
        std::fprintf(stderr, "micle: linear probe on %lld precomputed %lld-d features\n", (long long)labelled.size(), (long long)dim);
        r = run_fit(o, learner, data::labeled_features(labelled, std::move(features), dim, seed), fo, val);
    } else {
        r = run_fit(o, learner, data::labeled_images(labelled, data::augment_config::finetune(size), cfg.backbone.in_channels, seed),
                    fo, val);
    }
    // `selected` names the run's model for evaluate and --init.
    const auto chosen_ckpt = select == "best" && !r.best_checkpoint.empty() ? r.best_checkpoint : r.last_checkpoint;
    if (!chosen_ckpt.empty()) train::detail::write_pointer(out, "selected", chosen_ckpt.filename().string());
    std::printf("fine-tuned on %lld labelled images (fraction %.2f%s) in %.1f s: %s\n", (long long)labelled.size(), fraction,
                probe ? ", linear probe" : "", r.seconds, chosen_ckpt.c_str());
    return 0;
}

}  // namespace

int finetune(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_training_options({"label-fraction", "head-lr-scale", "pool-seed", "val-every", "select"}),
                    {"linear-probe", "resume"});
    if (o.help()) {
        std::printf("%s%s%s", finetune_usage, data_usage, backend_usage);
        return 0;
    }
    const std::string opt = o.str("optimizer", "sgd");
    const std::int64_t n = o.integer("batch-size", 64);
    if (opt == "sgd") {
        optim::sgd_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-4));
        return run_finetune<optim::sgd>(o, c, optim::scaled_lr(float(o.number("lr", 0.1)), n, optim::lr_scaling::linear));
    }
    if (opt == "adamw") {
        optim::adamw_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-2));
        return run_finetune<optim::adamw>(o, c, float(o.number("lr", 1e-3)));
    }
    throw usage_error("--optimizer must be sgd or adamw, not '" + opt + "'");
}

}  // namespace micle::cli
