// micle finetune: supervised fine-tuning or a linear probe on a fraction of the labels -
// argument parsing, then micle::train::finetune (train/recipes.hpp).
#include "common.hpp"

namespace micle::cli {

const char* finetune_usage =
    "usage: micle finetune --data SPEC --out DIR [--init CKPT] [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, or fashion-mnist\n"
    "  --init CKPT            pretrained weights: a micle run directory or a .safetensors file (torchvision names);\n"
    "                         without it the backbone starts from random weights (the supervised baseline)\n"
    "  --out DIR              run directory\n"
    "  --label-fraction F     fraction of the training patients whose labels are used, stratified by label (1.0)\n"
    "  --linear-probe         train only a linear classifier (after a batch norm) on frozen features, computed\n"
    "                         once; without --init, of a random-init backbone (the probe's baseline)\n"
    "  --epochs E (10; 100 for --linear-probe)  --batch-size N (64)  --lr LR (0.1, sgd: LR x N / 256)  --head-lr-scale X (1)\n"
    "  --optimizer sgd|adamw (sgd)  --weight-decay WD (sgd 1e-4, adamw 1e-2)\n"
    "  --image-size S, --arch, --width, --stem, --base-channels, --channels: default to the --init checkpoint's\n"
    "                         (--channels: else the data's)\n"
    "  --max-samples N        draw the labelled fraction from a seeded random pool of N training images\n"
    "  --pool-seed S (0)      the seed of that pool (keep it fixed across fractions and methods)\n"
    "  --val-every K          every K epochs, accuracy and AUC on the val split -> metrics.jsonl\n"
    "  --select last|best     the run's model: its last checkpoint, or the best by val AUC (needs --val-every)\n"
    "  --workers W (2)  --seed S (0)  --resume  --checkpoint-every N  --keep-last K (1)\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n";

int finetune(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_training_options({"label-fraction", "head-lr-scale", "pool-seed", "val-every", "select"}),
                    {"linear-probe", "resume"});
    if (o.help()) return std::printf("%s%s%s", finetune_usage, data_usage, backend_usage), 0;
    train::finetune_recipe r;
    r.fit = fit_options_from(o);
    r.init = o.str("init");
    r.label_fraction = o.number("label-fraction", 1.0);
    r.linear_probe = o.has("linear-probe");
    // A probe's epochs run over precomputed features (milliseconds each): train it to
    // convergence by default, as scikit-learn's solver does (tests/interop/probe_vs_sklearn.py).
    if (r.linear_probe && !o.has("epochs")) r.fit.epochs = 100;
    r.image_size = o.integer("image-size", 0);
    r.model = model_options(o);
    r.optimizer = optimizer_from(o, "sgd");
    r.head_lr_scale = float(o.number("head-lr-scale", 1.0));
    r.val_every = o.integer("val-every", 0);
    const std::string select = o.str("select", "last");
    if (select != "last" && select != "best") throw usage_error("--select must be last or best");
    if (select == "best" && !o.has("val-every")) throw usage_error("--select best chooses by val AUC: give --val-every K");
    r.select_best = select == "best";
    r.seed = std::uint64_t(o.integer("seed", 0));
    const auto pool =
        data::random_subset(load_split(o, "train"), o.integer("max-samples", INT64_MAX), std::uint64_t(o.integer("pool-seed", 0)));
    context<backend> ctx = make_context(o);
    training_ranks ranks(ctx);  // under mpirun: data-parallel, --batch-size images in total
    r.comm = &ranks.comm();
    const bool lead = r.comm->rank() == 0;
    if (lead) std::fprintf(stderr, "micle: running on %s%s\n", describe(ctx).c_str(), ranks.text().c_str());
    if (lead) warn_if_leaks(o, "finetune");
    const auto f = std::apply([&](auto&&... cb) { return train::finetune(ctx, pool, split_for(o, "val", "--val-every"), r, cb...); },
                              cli_callbacks(o, r.fit));
    if (const int code = stopped_by_signal(*r.comm, "finetune", r.fit.run_dir)) return code;
    if (lead)
        std::printf("fine-tuned on %lld labelled images (fraction %.2f%s) in %.1f s: %s\n", (long long)f.labelled, r.label_fraction,
                r.linear_probe ? ", linear probe" : "", f.seconds, f.selected.c_str());
    return 0;
}

}  // namespace micle::cli
