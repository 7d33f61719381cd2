// micle pretrain: SimCLR or MICLe contrastive pretraining - argument parsing, then
// micle::train::fit.
#include "common.hpp"
#include "micle/contrastive/nt_xent.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/heads/projection.hpp"
#include "micle/train/contrastive_learner.hpp"

namespace micle::cli {

const char* pretrain_usage =
    "usage: micle pretrain --data SPEC --out DIR [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --out DIR              run directory (checkpoints, metrics.jsonl, config.json)\n"
    "  --pairs simclr|micle   positive pairs: two views of one image, or two images of a patient (simclr)\n"
    "  --simulated-bags SEED  group images of a class into simulated patients of 1-4 images (MICLe without patient ids)\n"
    "  --arch resnet18|34|50|101|152 (resnet18)   --width 1|2|4 (1)   --stem imagenet|small (imagenet)\n"
    "  --base-channels C      stem width before the multiplier (64, torchvision's)\n"
    "  --channels 1|3         model input channels (the data's)\n"
    "  --image-size S         view size in pixels (224)\n"
    "  --augment simclr|chest_xray (simclr)\n"
    "  --epochs E (10)  --batch-size N pairs per step (64)\n"
    "  --optimizer lars|sgd|adamw (lars)  --lr BASE (lars/sgd 0.3, adamw 1e-3; lars and sgd use BASE x N / 256)\n"
    "  --weight-decay WD (lars 1e-6, sgd 1e-4, adamw 1e-2)  --warmup-epochs W (10% of the epochs)\n"
    "  --temperature T (0.1)\n"
    "  --init CKPT            start from a checkpoint (micle run dir or torchvision-named .safetensors)\n"
    "  --max-samples N        use a seeded random subset of N training images\n"
    "  --knn-every K          every K epochs, kNN accuracy (k 20, cosine) of the backbone on the val split -> metrics.jsonl\n"
    "  --knn-samples M (2000) images of the train and val splits the kNN monitor uses\n"
    "  --workers W (2)  --seed S (0)  --resume   continue the run in --out from its latest checkpoint\n"
    "  --checkpoint-every N   also checkpoint every N steps   --keep-last K (1) checkpoints kept\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n";

namespace {

template <template <class> class Opt>
int run_pretrain(const options& o, typename Opt<backend>::config opt_cfg, float lr) {
    using learner_t = contrastive_learner<backend, models::resnet, heads::projection, contrastive::nt_xent, Opt>;
    const fs::path out = o.required("out");
    const std::uint64_t seed = std::uint64_t(o.integer("seed", 0));
    const std::int64_t size = o.integer("image-size", 224), n = o.integer("batch-size", 64), epochs = o.integer("epochs", 10);
    if (size < 8 || n < 2) throw usage_error("need --image-size >= 8 and --batch-size >= 2");
    const std::string pairs = o.str("pairs", "simclr"), aug_name = o.str("augment", "simclr");
    if (pairs != "simclr" && pairs != "micle") throw usage_error("--pairs must be simclr or micle");
    if (aug_name != "simclr" && aug_name != "chest_xray") throw usage_error("--augment must be simclr or chest_xray");

    auto images = data::random_subset(load_split(o, "train"), o.integer("max-samples", INT64_MAX), seed);
    if (o.has("simulated-bags")) {
        data::simulate_bags(images, std::uint64_t(o.integer("simulated-bags", 0)));
        std::fprintf(stderr, "micle: SIMULATED patient bags (1-4 images of one class each, seed %lld)\n",
                     o.integer("simulated-bags", 0));
    }
    typename learner_t::config cfg;
    cfg.backbone = backbone_from(o, {}, data_channels(images, o));
    cfg.head = heads::projection_config::simclr_v1();
    cfg.loss.temperature = float(o.number("temperature", 0.1));
    cfg.optimizer = opt_cfg;
    cfg.seed = seed;
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    learner_t learner(ctx, cfg);
    const auto aug = aug_name == "simclr" ? data::augment_config::simclr(size) : data::augment_config::chest_xray(size);

    auto fo = fit_options_from(o, out, lr);
    fo.metadata = models::resnet_metadata(cfg.backbone, size);
    fo.metadata["method"] = pairs;
    fo.metadata["seed"] = std::to_string(seed);
    init_unless_resuming(o, out, learner.ctx(), learner.state());  // --init
    write_config(out, {{"command", "pretrain"}, {"pairs", pairs}, {"augment", aug_name}, {"epochs", epochs}, {"batch_size", n},
                       {"image_size", size}, {"lr", lr}, {"train_images", images.size()},
                       {"simulated_bags", images.simulated_patients}, {"seed", seed}});

    auto train = [&](const auto& source) {
        if (o.has("warmup-epochs")) fo.warmup_steps = o.integer("warmup-epochs", 0) * source.batches(n);
        if (source.batches(n) < 1)
            throw usage_error(micle::detail::cat("--batch-size ", n, " is larger than the ", source.units(),
                                                 pairs == "micle" ? " patient bags" : " training images"));
        std::optional<train::knn_monitor<learner_t>> knn;
        if (o.has("knn-every")) {  // M train images vote for M val images, unaugmented
            const auto m = o.integer("knn-samples", 2000), every = o.integer("knn-every", 1);
            if (m < 1 || every < 1) throw usage_error("need --knn-every >= 1 and --knn-samples >= 1");
            knn.emplace(learner,
                        data::labeled_images(data::random_subset(images, m, 0x6b6e6eull), data::augment_config::eval(size),
                                             cfg.backbone.in_channels, 0, false),
                        eval_split(o, "val", "--knn-every", size, cfg.backbone.in_channels, m), every);
        }
        run_fit(o, learner, source, fo, knn);
    };
    if (pairs == "simclr") {
        train(contrastive::augmented_views(images, aug, cfg.backbone.in_channels, seed));
    } else {
        const contrastive::multi_instance bags(images, aug, cfg.backbone.in_channels, seed);
        std::int64_t multi = 0;
        for (const auto& b : bags.bags()) multi += b.size() >= 2;
        std::fprintf(stderr, "micle: %lld patient bags, %lld with two or more images\n", (long long)bags.units(), (long long)multi);
        train(bags);
    }
    std::printf("pretrained %s: %s\n", pairs.c_str(), (out / "latest").c_str());
    return 0;
}

}  // namespace

int pretrain(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_training_options({"pairs", "simulated-bags", "augment", "temperature", "knn-every", "knn-samples"}),
                    {"resume"});
    if (o.help()) {
        std::printf("%s%s%s", pretrain_usage, data_usage, backend_usage);
        return 0;
    }
    const std::string opt = o.str("optimizer", "lars");
    const std::int64_t n = o.integer("batch-size", 64);
    if (opt == "lars") {
        optim::lars_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-6));
        return run_pretrain<optim::lars>(o, c, optim::scaled_lr(float(o.number("lr", 0.3)), n, optim::lr_scaling::linear));
    }
    if (opt == "sgd") {
        optim::sgd_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-4));
        return run_pretrain<optim::sgd>(o, c, optim::scaled_lr(float(o.number("lr", 0.3)), n, optim::lr_scaling::linear));
    }
    if (opt == "adamw") {
        optim::adamw_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-2));
        return run_pretrain<optim::adamw>(o, c, float(o.number("lr", 1e-3)));
    }
    throw usage_error("--optimizer must be lars, sgd or adamw, not '" + opt + "'");
}

}  // namespace micle::cli
