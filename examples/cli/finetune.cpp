// micle finetune: supervised fine-tuning or a linear probe on a fraction of the labels.
#include "batches.hpp"
#include "micle/data/loader.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/supervised_learner.hpp"

namespace micle::cli {

const char* finetune_usage =
    "usage: micle finetune --data SPEC --out DIR [--init CKPT] [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, IDX directory, or fashion-mnist\n"
    "  --init CKPT            pretrained weights: a micle run directory or a .safetensors file (torchvision names);\n"
    "                         without it the backbone starts from random weights (the supervised baseline)\n"
    "  --out DIR              run directory\n"
    "  --label-fraction F     fraction of the training patients whose labels are used, stratified by label (1.0)\n"
    "  --linear-probe         train only a linear classifier on frozen features (computed once)\n"
    "  --epochs E (10)  --batch-size N (64)  --lr LR (0.1, scaled by N/256)  --head-lr-scale X (1)\n"
    "  --optimizer sgd|adamw (sgd)  --weight-decay WD (sgd 1e-4, adamw 1e-2)\n"
    "  --image-size S, --arch, --width, --stem, --base-channels, --channels: default to the --init checkpoint's\n"
    "  --max-samples N        draw the labelled fraction from a seeded random pool of N training images\n"
    "  --pool-seed S (0)      the seed of that pool (keep it fixed across fractions and methods)\n"
    "  --workers W (2)  --seed S (0)  --resume\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n";

namespace {

template <template <class> class Opt>
int run_finetune(const options& o, typename Opt<backend>::config opt_cfg, double base_lr) {
    using learner_t = supervised_learner<backend, models::resnet, Opt>;
    const fs::path out = o.required("out");
    const std::uint64_t seed = std::uint64_t(o.integer("seed", 0));
    std::map<std::string, std::string> init_meta;
    fs::path init_file;
    if (o.has("init")) {
        init_file = model_file(o.str("init"));
        init_meta = safetensors::reader(init_file).metadata();
    }
    const std::int64_t size = o.integer("image-size", init_meta.count("image-size") ? std::stoll(init_meta["image-size"]) : 224);
    const std::int64_t n = o.integer("batch-size", 64), epochs = o.integer("epochs", 10);
    const int workers = int(o.integer("workers", 2));
    const double fraction = o.number("label-fraction", 1.0);
    const bool probe = o.has("linear-probe");
    if (size < 8 || n < 1 || epochs < 1 || workers < 1) throw usage_error("need --image-size >= 8, --batch-size >= 1, --epochs >= 1");
    if (probe && !o.has("init")) throw usage_error("--linear-probe needs --init (a probe of random features is meaningless)");

    auto full = load_split(o, "train");
    if (o.has("max-samples") && o.integer("max-samples", 0) < full.size()) {
        auto order = shuffled_indices(full.size(), std::uint64_t(o.integer("pool-seed", 0)));
        order.resize(std::size_t(std::max<long long>(1, o.integer("max-samples", 0))));
        std::sort(order.begin(), order.end());
        full = full.subset(order);
    }
    const auto chosen = data::label_fraction(full, fraction, seed);
    const auto labelled = full.subset(chosen);
    fs::create_directories(out);
    {
        std::ofstream ids(out / "label_ids.txt");
        ids << "# training samples whose labels are used: fraction " << fraction << " of the patients, seed " << seed << "\n";
        for (auto i : chosen) ids << i << "\n";
    }

    typename learner_t::config cfg;
    cfg.backbone = backbone_from(o, init_meta);
    cfg.classes = labelled.num_classes;
    cfg.task = labelled.task == data::task_kind::multiclass ? task_type::multiclass : task_type::multilabel;
    cfg.optimizer = opt_cfg;
    cfg.head_lr_scale = float(o.number("head-lr-scale", 1.0));
    cfg.freeze_backbone = probe;
    cfg.seed = seed;
    context<backend> ctx = make_context(o);
    std::fprintf(stderr, "micle: running on %s\n", describe(ctx).c_str());
    learner_t learner(ctx, cfg);
    auto state = learner.state();
    const std::vector<train::optimizer_states> opt_states{{"optim.", learner.backbone_optimizer().state()},
                                                           {"head_optim.", learner.head_optimizer().state()}};
    std::int64_t start_epoch = 0;
    if (o.has("resume") && fs::exists(out / "latest")) {
        const auto meta = train::load_checkpoint(train::latest_checkpoint(out), ctx, state, opt_states);
        start_epoch = std::stoll(meta.at("epoch"));
        learner.set_steps_done(std::stoll(meta.at("step")));
    } else if (o.has("init")) {
        auto backbone_state = learner.backbone().state();
        const auto report = train::load_weights(init_file, ctx, backbone_state, {false, true});
        std::fprintf(stderr, "micle: --init %s: %zu tensors loaded, %zu missing, %zu not used (head)\n", init_file.c_str(),
                     report.loaded.size(), report.missing.size(), report.unexpected.size());
        for (const auto& note : report.notes) std::fprintf(stderr, "micle: %s\n", note.c_str());
        if (report.loaded.empty()) throw data::data_error("--init " + init_file.string() + ": no backbone tensor matched");
    }

    const std::int64_t steps_per_epoch = (labelled.size() + n - 1) / n, total = steps_per_epoch * epochs;
    const optim::warmup_cosine schedule{float(optim::scaled_lr(float(base_lr), n, optim::lr_scaling::linear)), 0, total, 0.0f};
    const auto aug = probe ? data::augment_config::eval(size) : data::augment_config::finetune(size);
    const std::int64_t channels = cfg.backbone.in_channels;

    // Linear probe: the backbone is frozen and the views are not augmented, so the
    // features are computed once.
    std::vector<float> features;
    std::int64_t feature_dim = learner.backbone().output_dim();
    if (probe) {
        const auto order = shuffled(labelled.size(), seed, 0);
        std::vector<std::int64_t> identity(order.size());
        std::iota(identity.begin(), identity.end(), 0);
        data::prefetch_loader<labeled_batch> loader(
            [&](std::int64_t b) { return make_labeled_batch(labelled, identity, b, n, aug, channels, seed, 0); }, steps_per_epoch,
            workers, 2 * workers);
        while (auto batch = loader.next()) {
            const auto f = learner.features(tensor<backend>::from_host(ctx, batch->dims, batch->pixels)).to_host(ctx);
            features.insert(features.end(), f.begin(), f.end());
        }
        std::fprintf(stderr, "micle: linear probe on %lld precomputed %lld-d features\n", (long long)labelled.size(),
                     (long long)feature_dim);
    }

    jsonl log(out / "metrics.jsonl");
    progress bar;
    const std::int64_t stop_after = o.integer("stop-after", epochs);
    for (std::int64_t epoch = start_epoch; epoch < std::min(epochs, stop_after); ++epoch) {
        const auto order = shuffled(labelled.size(), seed, epoch);
        std::unique_ptr<data::prefetch_loader<labeled_batch>> loader;
        if (!probe)
            loader = std::make_unique<data::prefetch_loader<labeled_batch>>(
                [&](std::int64_t b) { return make_labeled_batch(labelled, order, b, n, aug, channels, seed, epoch); },
                steps_per_epoch, workers, 2 * workers);
        std::unique_ptr<device_batches<labeled_batch>> batches;
        if (loader) batches = std::make_unique<device_batches<labeled_batch>>(ctx, *loader);
        labeled_batch batch;
        const tensor<backend>* images = nullptr;
        double epoch_loss = 0;
        for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            const std::int64_t step = learner.steps_done();
            const float lr = schedule(step);
            float loss;
            std::int64_t count;
            try {
                if (probe) {
                    const std::int64_t begin = s * n, end = std::min<std::int64_t>(begin + n, labelled.size());
                    count = end - begin;
                    std::vector<float> f(std::size_t(count * feature_dim)), targets;
                    std::vector<int> labels;
                    for (std::int64_t k = 0; k < count; ++k) {
                        const auto i = order[std::size_t(begin + k)];
                        std::copy_n(features.begin() + i * feature_dim, feature_dim, f.begin() + k * feature_dim);
                        if (cfg.task == task_type::multiclass)
                            labels.push_back(labelled.labels[std::size_t(i)]);
                        else
                            targets.insert(targets.end(), labelled.targets.begin() + i * labelled.num_classes,
                                           labelled.targets.begin() + (i + 1) * labelled.num_classes);
                    }
                    loss = learner.step_head(tensor<backend>::from_host(ctx, {count, feature_dim}, f), labels, targets, lr);
                } else {
                    check<backend_error>(batches->next(batch, images), "finetune: the loader ended early");
                    count = batch.dims[0];
                    loss = learner.step(*images, batch.labels, batch.targets, lr);
                }
            } catch (const value_error& e) {
                return stop_training("finetune", bar, e, out);
            }
            const double ips = double(count) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            epoch_loss += loss;
            record_step(log, bar, epoch, epochs, s, steps_per_epoch, step, loss, lr, ips,
                        step + 1 - start_epoch * steps_per_epoch, total - start_epoch * steps_per_epoch);
        }
        bar.end_line();
        auto meta = backbone_meta(cfg.backbone, size);
        meta["classes"] = std::to_string(cfg.classes);
        meta["task"] = cfg.task == task_type::multiclass ? "multiclass" : "multilabel";
        meta["label-fraction"] = json_number(fraction);
        meta["linear-probe"] = probe ? "1" : "0";
        meta["epoch"] = std::to_string(epoch + 1);
        meta["step"] = std::to_string(learner.steps_done());
        std::string names;
        for (const auto& c : labelled.class_names) names += (names.empty() ? "" : "\t") + c;
        meta["class-names"] = names;
        train::save_checkpoint(out, epoch + 1, ctx, state, opt_states, meta);
        std::fprintf(stderr, "epoch %lld: mean loss %.4f\n", (long long)epoch + 1, epoch_loss / double(steps_per_epoch));
    }
    std::printf("fine-tuned on %lld labelled images (fraction %.2f%s) in %.1f s: %s\n", (long long)labelled.size(), fraction,
                probe ? ", linear probe" : "", bar.seconds(), (out / "latest").c_str());
    return 0;
}

}  // namespace

int finetune(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_backend_options({"data", "init", "out", "label-fraction", "epochs", "batch-size", "lr", "head-lr-scale", "optimizer",
                     "max-samples", "pool-seed",
                     "weight-decay", "image-size", "arch", "width", "stem", "base-channels", "channels", "workers", "seed", "stop-after"}),
                    {"linear-probe", "resume"});
    if (o.help()) {
        std::printf("%s%s%s", finetune_usage, data_usage, backend_usage);
        return 0;
    }
    const std::string opt = o.str("optimizer", "sgd");
    if (opt == "sgd") {
        optim::sgd_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-4));
        return run_finetune<optim::sgd>(o, c, o.number("lr", 0.1));
    }
    if (opt == "adamw") {
        optim::adamw_config c;
        c.weight_decay = float(o.number("weight-decay", 1e-2));
        return run_finetune<optim::adamw>(o, c, o.number("lr", 1e-3) * 256.0 / double(o.integer("batch-size", 64)));
    }
    throw usage_error("--optimizer must be sgd or adamw, not '" + opt + "'");
}

}  // namespace micle::cli
