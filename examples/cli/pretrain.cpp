// micle pretrain: SimCLR or MICLe contrastive pretraining.
#include "common.hpp"
#include "micle/contrastive/nt_xent.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/loader.hpp"
#include "micle/heads/projection.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/checkpoint.hpp"
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
    "  --channels 1|3         model input channels (1)\n"
    "  --image-size S         view size in pixels (224)\n"
    "  --augment simclr|chest_xray (simclr)\n"
    "  --epochs E (10)  --batch-size N pairs per step (64)\n"
    "  --optimizer lars|sgd|adamw (lars)  --lr BASE (lars/sgd 0.3, adamw 1e-3; scaled by N/256 for lars and sgd)\n"
    "  --weight-decay WD (lars 1e-6, sgd 1e-4, adamw 1e-2)  --warmup-epochs W (10% of the epochs)\n"
    "  --temperature T (0.1)\n"
    "  --init CKPT            start from a checkpoint (micle run dir or torchvision-named .safetensors)\n"
    "  --max-samples N        use a seeded random subset of N training images\n"
    "  --workers W (2)  --seed S (0)  --resume   continue the run in --out from its latest checkpoint\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n";

namespace {

template <template <class> class Opt>
int run_pretrain(const options& o, typename Opt<backend>::config opt_cfg, float base_lr) {
    using learner_t = contrastive_learner<backend, models::resnet, heads::projection, contrastive::nt_xent, Opt>;
    const fs::path out = o.required("out");
    const std::uint64_t seed = std::uint64_t(o.integer("seed", 0));
    const std::int64_t size = o.integer("image-size", 224), n = o.integer("batch-size", 64), epochs = o.integer("epochs", 10);
    const int workers = int(o.integer("workers", 2));
    if (size < 8 || n < 2 || epochs < 1 || workers < 1) throw usage_error("need --image-size >= 8, --batch-size >= 2, --epochs >= 1, --workers >= 1");
    const std::string pairs = o.str("pairs", "simclr"), aug_name = o.str("augment", "simclr");
    if (pairs != "simclr" && pairs != "micle") throw usage_error("--pairs must be simclr or micle");
    if (aug_name != "simclr" && aug_name != "chest_xray") throw usage_error("--augment must be simclr or chest_xray");

    auto images = load_split(o, "train");
    if (o.has("max-samples") && o.integer("max-samples", 0) < images.size()) {
        auto order = shuffled_indices(images.size(), seed);
        order.resize(std::size_t(std::max<long long>(1, o.integer("max-samples", 0))));
        std::sort(order.begin(), order.end());
        images = images.subset(order);
    }
    if (o.has("simulated-bags")) {
        data::simulate_bags(images, std::uint64_t(o.integer("simulated-bags", 0)));
        std::fprintf(stderr, "micle: SIMULATED patient bags (1-4 images of one class each, seed %lld)\n",
                     o.integer("simulated-bags", 0));
    }

    typename learner_t::config cfg;
    cfg.backbone = backbone_from(o);
    cfg.head = heads::projection_config::simclr_v1();
    cfg.loss.temperature = float(o.number("temperature", 0.1));
    cfg.optimizer = opt_cfg;
    cfg.seed = seed;
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    learner_t learner(ctx, cfg);
    const auto aug = aug_name == "simclr" ? data::augment_config::simclr(size) : data::augment_config::chest_xray(size);

    std::unique_ptr<contrastive::augmented_views> views;
    std::unique_ptr<contrastive::multi_instance> bags;
    std::int64_t units;
    if (pairs == "simclr") {
        views = std::make_unique<contrastive::augmented_views>(images, aug, cfg.backbone.in_channels, seed);
        units = views->units();
    } else {
        bags = std::make_unique<contrastive::multi_instance>(images, aug, cfg.backbone.in_channels, seed);
        units = bags->units();
        std::int64_t multi = 0;
        for (const auto& b : bags->bags()) multi += b.size() >= 2;
        std::fprintf(stderr, "micle: %lld patient bags, %lld with two or more images\n", (long long)units, (long long)multi);
    }
    const std::int64_t steps_per_epoch = units / n;
    if (steps_per_epoch < 1)
        throw usage_error("--batch-size " + std::to_string(n) + " is larger than the " + std::to_string(units) +
                          (pairs == "micle" ? " patient bags" : " training images"));
    const std::int64_t total = steps_per_epoch * epochs;
    const std::int64_t warmup = o.has("warmup-epochs") ? o.integer("warmup-epochs", 0) * steps_per_epoch : total / 10;
    const optim::warmup_cosine schedule{base_lr, std::min(warmup, total), total, 0.0f};

    fs::create_directories(out);
    std::int64_t start_epoch = 0;
    auto state = learner.state();
    const std::vector<train::optimizer_states> opt_states{{"optim.", learner.optimizer().state()}};
    if (o.has("resume") && fs::exists(out / "latest")) {
        const auto ck = train::latest_checkpoint(out);
        const auto meta = train::load_checkpoint(ck, ctx, state, opt_states);
        start_epoch = std::stoll(meta.at("epoch"));
        learner.set_steps_done(std::stoll(meta.at("step")));
        std::fprintf(stderr, "micle: resuming %s at epoch %lld\n", ck.c_str(), (long long)start_epoch);
    } else if (o.has("init")) {
        const auto report = train::load_weights(model_file(o.str("init")), ctx, state, {false, true});
        std::fprintf(stderr, "micle: --init loaded %zu tensors (%zu missing, %zu not used)\n", report.loaded.size(),
                     report.missing.size(), report.unexpected.size());
        for (const auto& note : report.notes) std::fprintf(stderr, "micle: %s\n", note.c_str());
    }
    {
        std::ofstream cfg_out(out / "config.json");
        cfg_out << "{\"command\": \"pretrain\", \"pairs\": \"" << pairs << "\", \"augment\": \"" << aug_name
                << "\", \"epochs\": " << epochs << ", \"batch_size\": " << n << ", \"image_size\": " << size
                << ", \"train_images\": " << images.size() << ", \"simulated_bags\": " << (images.simulated_patients ? "true" : "false")
                << ", \"seed\": " << seed << "}\n";
    }
    jsonl log(out / "metrics.jsonl");
    progress bar;
    const std::int64_t stop_after = o.integer("stop-after", epochs);
    for (std::int64_t epoch = start_epoch; epoch < std::min(epochs, stop_after); ++epoch) {
        data::prefetch_loader<contrastive::view_batch> loader(
            [&](std::int64_t b) { return views ? views->make_batch(epoch, b, n) : bags->make_batch(epoch, b, n); },
            steps_per_epoch, workers, 2 * workers);
        double epoch_loss = 0;
        device_batches<contrastive::view_batch> batches(ctx, loader);
        contrastive::view_batch batch;
        const tensor<backend>* views_t = nullptr;
        for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            check<backend_error>(batches.next(batch, views_t), "pretrain: the loader ended early");
            const std::int64_t step = learner.steps_done();
            const float lr = schedule(step);
            float loss;
            try {
                loss = learner.step(*views_t, batch.groups, lr);
            } catch (const value_error& e) {
                return stop_training("pretrain", bar, e, out);
            }
            const double ips = double(2 * n) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            epoch_loss += loss;
            record_step(log, bar, epoch, epochs, s, steps_per_epoch, step, loss, lr, ips,
                        step + 1 - start_epoch * steps_per_epoch, total - start_epoch * steps_per_epoch);
        }
        bar.end_line();
        auto meta = backbone_meta(cfg.backbone, size);
        meta["method"] = pairs;
        meta["epoch"] = std::to_string(epoch + 1);
        meta["step"] = std::to_string(learner.steps_done());
        meta["seed"] = std::to_string(seed);
        const auto ck = train::save_checkpoint(out, epoch + 1, ctx, state, opt_states, meta);
        std::fprintf(stderr, "epoch %lld: mean loss %.4f, checkpoint %s\n", (long long)epoch + 1,
                     epoch_loss / double(steps_per_epoch), ck.c_str());
    }
    std::printf("pretrained %s in %.1f s: %s\n", pairs.c_str(), bar.seconds(), (out / "latest").c_str());
    return 0;
}

}  // namespace

int pretrain(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_backend_options({"data", "out", "pairs", "simulated-bags", "arch", "width", "stem", "base-channels", "channels",
                     "image-size", "augment", "epochs", "batch-size", "optimizer", "lr", "weight-decay", "warmup-epochs",
                     "temperature", "init", "max-samples", "workers", "seed", "stop-after"}),
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
