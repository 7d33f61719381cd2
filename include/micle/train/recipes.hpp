#pragma once
// The paper's two training stages, one call each, from a recipe:
//   pretrain - SimCLR (two views of an image) or MICLe (two images of a patient) contrastive
//              pretraining of a ResNet with a projection head and NT-Xent;
//   finetune - supervised fine-tuning, or a linear probe on frozen features, on a stratified
//              fraction of the training patients' labels, from pretrained weights or from
//              random ones (the supervised baseline).
// A recipe names the optimizer, the augmentation and the pair strategy at run time; these
// functions choose the learner type, write the run's config.json, load the initial weights
// and call train::fit with the caller's callbacks. The `micle` trainer is a thin shell over
// them. Everything here is the same in a program that builds its learner by hand and calls
// fit itself (examples/pretrain_fit.cpp); the recipes only save the wiring.
//
// The model is described with the keys of its checkpoint metadata (models::backbone_traits;
// a ResNet's: arch, width, stem, base-channels, channels), so a recipe can leave any of them
// to the initial checkpoint (fine-tuning) or to the backbone's defaults (resnet18 with the
// data's channels). The backbone is a template argument, models::resnet by default.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "micle/contrastive/nt_xent.hpp"
#include "micle/core/file.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/split.hpp"
#include "micle/core/communicator.hpp"
#include "micle/dist/data_parallel.hpp"
#include "micle/heads/projection.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/contrastive_learner.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/methods.hpp"
#include "micle/train/supervised_learner.hpp"

namespace micle::train {

/// Where the recipes' notes go (what was loaded, how many patient bags...): a line at a time.
using log_fn = std::function<void(const std::string&)>;
inline void log_to_stderr(const std::string& line) { std::fprintf(stderr, "micle: %s\n", line.c_str()); }

/// An optimizer by name, with the recipe's base learning rate and weight decay (negative:
/// the optimizer's default). lars and sgd scale the base rate by SimCLR's rule, base x
/// batch / 256 (batch in pairs for pretraining, images for fine-tuning); adamw uses it as is.
struct optimizer_choice {
    std::string name;
    double base_lr = -1;       ///< < 0: the stage's default (train::pretraining, train::finetuning; adamw 1e-3)
    double weight_decay = -1;  ///< < 0: lars 1e-6, sgd 1e-4, adamw 1e-2
};

/// SimCLR or MICLe pretraining.
struct pretrain_recipe {
    std::string pairs = "simclr";    ///< a train::methods name: simclr (two views of one image) or micle (two images of a bag)
    contrastive::bag_by bag = contrastive::bag_by::patient;  ///< micle: a bag is a patient's images or one study's
    std::string augment = "simclr";  ///< simclr | chest_xray (data::augment_config)
    /// Over the augment preset's: the smallest crop area (a fraction of the image, 0-1], the
    /// rotation range (+-degrees, 0-180) and the colour jitter strength (SimCLR's s, >= 0).
    std::optional<float> crop_area_min, rotation_degrees, jitter_strength;
    std::int64_t image_size = 224;   ///< view size in pixels
    std::map<std::string, std::string> model;  ///< backbone keys over its defaults (resnet18) with the data's channels
    optimizer_choice optimizer{"lars"};        ///< lars | sgd | adamw
    std::optional<float> temperature;  ///< NT-Xent's; unset: contrastive::nt_xent_config's (0.1)
    std::int64_t warmup_epochs = -1;  ///< -1: 10% of the steps
    std::uint64_t seed = 0;
    std::filesystem::path init;       ///< start from these weights (a run directory or a file); not when resuming
    std::int64_t knn_every = 0;       ///< kNN accuracy of the backbone on the val split every K epochs (0: off)
    std::int64_t knn_samples = 2000;  ///< train and val images the kNN monitor uses
    fit_options fit;                  ///< epochs, batch (pairs), run_dir, resume, checkpoints; lr is set here
    log_fn log = log_to_stderr;
    /// Data-parallel over these ranks (every rank calls pretrain with the same recipe; the
    /// batch is the global one); nullptr: this process alone.
    dist::communicator* comm = nullptr;
    dist::options dist;  ///< global batch norm, gradient bucket size
};

/// Supervised fine-tuning or a linear probe.
struct finetune_recipe {
    std::filesystem::path init;  ///< pretrained weights; empty: random weights (the supervised baseline)
    double label_fraction = 1.0; ///< of the training patients, stratified by label (data::label_fraction)
    bool linear_probe = false;   ///< train a linear classifier on frozen features, computed once
    std::int64_t image_size = 0; ///< 0: the init checkpoint's, else 224
    std::map<std::string, std::string> model;  ///< backbone keys over the init checkpoint's, then the defaults
    optimizer_choice optimizer{"sgd"};         ///< sgd | adamw
    float head_lr_scale = 1.0f;
    std::int64_t val_every = 0;  ///< accuracy and AUC on the val split every K epochs (0: off)
    bool select_best = false;    ///< the run's model is its best checkpoint by val AUC (needs val_every)
    std::uint64_t seed = 0;
    fit_options fit;             ///< epochs, batch (images), run_dir, resume, checkpoints; lr is set here
    log_fn log = log_to_stderr;
    /// Data-parallel over these ranks (every rank calls finetune with the same recipe; the
    /// batch is the global one); nullptr: this process alone.
    dist::communicator* comm = nullptr;
    dist::options dist;  ///< global batch norm, gradient bucket size
};

struct finetune_result : fit_result {
    std::filesystem::path selected;  ///< the run's model (also named by run_dir/selected)
    std::int64_t labelled = 0;       ///< training images whose labels were used
};

namespace detail {

template <template <class> class Opt>
struct optimizer_tag {};

/// Calls f(optimizer_tag<Opt>{}, Opt's config, peak lr) for the optimizer `o` names.
template <class F>
decltype(auto) with_optimizer(const optimizer_choice& o, const stage_defaults& stage, std::int64_t batch, F&& f) {
    const double default_base = stage.base_lr;
    const bool lars_allowed = stage.lars_allowed;
    auto decay = [&](double fallback) { return float(o.weight_decay < 0 ? fallback : o.weight_decay); };
    auto scaled = [&] { return optim::scaled_lr(float(o.base_lr < 0 ? default_base : o.base_lr), batch, optim::lr_scaling::linear); };
    if (o.name == "lars" && lars_allowed) {
        optim::lars_config c;
        c.weight_decay = decay(1e-6);
        return f(optimizer_tag<optim::lars>{}, c, scaled());
    }
    if (o.name == "sgd") {
        optim::sgd_config c;
        c.weight_decay = decay(1e-4);
        return f(optimizer_tag<optim::sgd>{}, c, scaled());
    }
    check<value_error>(o.name == "adamw", "optimizer must be ", lars_allowed ? "lars, sgd or adamw" : "sgd or adamw", ", not '",
                       o.name, "'");
    optim::adamw_config c;
    c.weight_decay = decay(1e-2);
    return f(optimizer_tag<optim::adamw>{}, c, float(o.base_lr < 0 ? 1e-3 : o.base_lr));
}

/// The backbone: `model` over `base` (a checkpoint's metadata) over the backbone's
/// defaults for the data's channels (backbone_traits). Fewer input channels than the data
/// has is refused.
template <template <class> class M>
typename models::backbone_traits<M>::config resolve_backbone(std::map<std::string, std::string> base,
                                                             const std::map<std::string, std::string>& model,
                                                             const data::dataset& d) {
    using traits = models::backbone_traits<M>;
    for (const auto& [k, v] : model) base[k] = v;
    const std::int64_t channels = d.load(0).channels;
    const auto c = traits::from_metadata(base, traits::defaults(channels));
    check<value_error>(traits::in_channels(c) >= channels, "a model with ", traits::in_channels(c),
                       " input channel(s) cannot read the images of ", d.source, ", which have ", channels,
                       " channels (the default: the data's channels)");
    return c;
}

/// Loads `init` into `state` non-strictly unless the run resumes from its own checkpoint;
/// the number of tensors loaded (-1: skipped).
template <class B>
std::int64_t load_init(const std::filesystem::path& init, const fit_options& fo, context<B>& ctx, nn::state_list<B> state,
                       const log_fn& log) {
    if (init.empty() || (fo.resume && !fo.run_dir.empty() && std::filesystem::exists(fo.run_dir / "latest"))) return -1;
    const auto file = weights_file(init);
    const auto r = load_weights(file, ctx, state, {false, true});
    log(micle::detail::cat("init ", file.string(), ": ", r.loaded.size(), " tensors loaded, ", r.missing.size(), " missing, ",
                           r.unexpected.size(), " not used"));
    for (const auto& note : r.notes) log(note);
    return std::int64_t(r.loaded.size());
}

/// run_dir/config.json (when there is a run directory).
inline void write_config(const fit_options& fo, const nlohmann::json& j) {
    if (fo.run_dir.empty()) return;
    std::filesystem::create_directories(fo.run_dir);
    write_file_atomically<data::data_error>(fo.run_dir / "config.json", j.dump(2) + "\n", "config.json");
}

/// Forwards on_validate to a monitor that may be absent.
template <class C>
struct optional_monitor {
    std::optional<C>& c;
    void on_validate(epoch_info& e) {
        if (c) c->on_validate(e);
    }
};

inline data::labeled_images unaugmented(data::dataset d, std::int64_t size, std::int64_t channels, std::int64_t limit = 0) {
    if (limit > 0) d = data::random_subset(d, limit, 0x6b6e6eull);
    return data::labeled_images(std::move(d), data::augment_config::eval(size), channels, 0, false);
}

}  // namespace detail

/// Pretrains on `images` (their patient ids are MICLe's bags); `val` feeds the kNN monitor.
/// Extra callbacks (progress, jsonl, a stop rule, your own) go to train::fit. The backbone
/// M is given first (`pretrain<my_net>(...)`, with backbone_traits<my_net>), or left out for a ResNet.
template <template <class> class M, class B, class... Callbacks>
fit_result pretrain(context<B>& ctx, const data::dataset& images, std::optional<data::dataset> val, pretrain_recipe r,
                    Callbacks&&... callbacks) {
    const method& how = find_method(r.pairs, "pretrain");
    check<value_error>(r.augment == "simclr" || r.augment == "chest_xray", "pretrain: augment must be simclr or chest_xray, not '",
                       r.augment, "'");
    check<value_error>(r.image_size >= 8 && r.fit.batch >= 2, "pretrain: need image_size >= 8 and a batch of >= 2 pairs");
    check<value_error>(r.knn_every >= 0 && r.knn_samples >= 1, "pretrain: need knn_every >= 0 and knn_samples >= 1");
    check<value_error>(r.knn_every == 0 || val, "pretrain: the kNN monitor needs a val split");
    const bool lead = !r.comm || r.comm->rank() == 0;  // rank 0 logs and writes config.json
    if (!lead) r.log = [](const std::string&) {};
    const auto backbone = detail::resolve_backbone<M>({}, r.model, images);
    const std::int64_t channels = models::backbone_traits<M>::in_channels(backbone);
    auto aug = r.augment == "simclr" ? data::augment_config::simclr(r.image_size) : data::augment_config::chest_xray(r.image_size);
    check<value_error>(!r.crop_area_min || (*r.crop_area_min > 0 && *r.crop_area_min <= 1),
                       "pretrain: crop_area_min must be in (0, 1], not ", r.crop_area_min.value_or(0));
    check<value_error>(!r.rotation_degrees || (*r.rotation_degrees >= 0 && *r.rotation_degrees <= 180),
                       "pretrain: rotation_degrees must be in [0, 180], not ", r.rotation_degrees.value_or(0));
    check<value_error>(!r.jitter_strength || (*r.jitter_strength >= 0 && std::isfinite(*r.jitter_strength)),
                       "pretrain: jitter_strength must be >= 0, not ", r.jitter_strength.value_or(0));
    aug.crop_area_min = r.crop_area_min.value_or(aug.crop_area_min);
    aug.rotation_degrees = r.rotation_degrees.value_or(aug.rotation_degrees);
    aug.jitter_strength = r.jitter_strength.value_or(aug.jitter_strength);

    return detail::with_optimizer(r.optimizer, pretraining, r.fit.batch, [&]<template <class> class Opt>(detail::optimizer_tag<Opt>,
                                                                                                       auto opt_cfg, float lr) {
        using learner_t = contrastive_learner<B, M, heads::projection, contrastive::nt_xent, Opt>;
        typename learner_t::config cfg;
        cfg.backbone = backbone;
        cfg.head = heads::projection_config::simclr_v1();
        cfg.loss.temperature = r.temperature.value_or(cfg.loss.temperature);
        cfg.loss.mask_same_group = how.mask_same_patient;
        cfg.optimizer = opt_cfg;
        cfg.seed = r.seed;
        learner_t learner(ctx, cfg);
        auto fo = r.fit;
        fo.lr = lr;
        fo.metadata = models::checkpoint_metadata<M>(backbone, r.image_size);
        fo.metadata["method"] = r.pairs;
        fo.metadata["seed"] = std::to_string(r.seed);
        detail::load_init(r.init, fo, ctx, learner.state(), r.log);
        if (r.comm) learner.distribute(*r.comm, r.dist);  // rank 0's model and optimizer state everywhere
        if (lead)
            detail::write_config(fo, {{"command", "pretrain"}, {"pairs", r.pairs},
                                  {"bag", r.bag == contrastive::bag_by::study ? "study" : "patient"}, {"augment", r.augment},
                                  {"crop_area_min", aug.crop_area_min}, {"rotation_degrees", aug.rotation_degrees},
                                  {"jitter_strength", aug.jitter_strength}, {"epochs", fo.epochs},
                                  {"batch_size", fo.batch}, {"image_size", r.image_size}, {"optimizer", r.optimizer.name},
                                  {"lr", lr}, {"temperature", cfg.loss.temperature}, {"train_images", images.size()},
                                  {"simulated_bags", images.simulated_patients ? nlohmann::json(images.simulated_bags) : nlohmann::json(false)},
                                  {"seed", r.seed},
                                  {"init", r.init.string()}, {"model", fo.metadata},
                                  {"ranks", r.comm ? r.comm->size() : 1}});

        auto train = [&](const auto& source) {
            if (r.warmup_epochs >= 0) fo.warmup_steps = r.warmup_epochs * source.batches(fo.batch);
            check<value_error>(source.batches(fo.batch) >= 1, "pretrain: a batch of ", fo.batch, " pairs is larger than the ",
                               source.units(), how.pairs_from_bags ? " patient bags" : " training images");
            std::optional<knn_monitor<learner_t>> knn;
            if (r.knn_every > 0)  // knn_samples train images vote for as many val images, unaugmented
                knn.emplace(learner, detail::unaugmented(images, r.image_size, channels, r.knn_samples),
                            detail::unaugmented(*val, r.image_size, channels, r.knn_samples), r.knn_every);
            return fit(learner, source, fo, detail::optional_monitor<knn_monitor<learner_t>>{knn},
                       std::forward<Callbacks>(callbacks)...);
        };
        if (!how.pairs_from_bags) return train(contrastive::augmented_views(images, aug, channels, r.seed));
        const contrastive::multi_instance bags(images, aug, channels, r.seed, r.bag);
        std::int64_t multi = 0;
        for (const auto& b : bags.bags()) multi += b.size() >= 2;
        r.log(micle::detail::cat(bags.units(), r.bag == contrastive::bag_by::study ? " study bags, " : " patient bags, ", multi,
                                 " with two or more images"));
        return train(bags);
    });
}

/// Fine-tunes on a label_fraction of `pool`'s patients (the chosen sample indices go to
/// run_dir/label_ids.txt); `val` feeds validation. run_dir/selected names the run's model.
/// The backbone M as for pretrain.
template <template <class> class M, class B, class... Callbacks>
finetune_result finetune(context<B>& ctx, const data::dataset& pool, std::optional<data::dataset> val, finetune_recipe r,
                         Callbacks&&... callbacks) {
    check<value_error>(r.val_every >= 0, "finetune: val_every must be >= 0");
    check<value_error>(!r.select_best || r.val_every > 0, "finetune: selecting the best checkpoint by val AUC needs val_every");
    check<value_error>(r.val_every == 0 || val, "finetune: validation needs a val split");
    const bool lead = !r.comm || r.comm->rank() == 0;  // rank 0 logs and writes config.json, label_ids.txt, selected
    if (!lead) r.log = [](const std::string&) {};
    std::map<std::string, std::string> init_meta;
    if (!r.init.empty()) init_meta = safetensors::reader(weights_file(r.init)).metadata();
    if (r.image_size == 0) r.image_size = init_meta.count("image-size") ? std::stoll(init_meta["image-size"]) : 224;
    check<value_error>(r.image_size >= 8, "finetune: need image_size >= 8");

    const auto chosen = data::label_fraction(pool, r.label_fraction, r.seed);
    const auto labelled = pool.subset(chosen);
    if (!r.fit.run_dir.empty() && lead) {
        std::filesystem::create_directories(r.fit.run_dir);
        std::ostringstream ids;
        ids << "# training samples whose labels are used: fraction " << r.label_fraction << " of the patients, seed " << r.seed
            << "\n";
        for (auto i : chosen) ids << i << "\n";
        write_file_atomically<data::data_error>(r.fit.run_dir / "label_ids.txt", ids.str(), "label_ids.txt");
    }
    const auto backbone = detail::resolve_backbone<M>(init_meta, r.model, labelled);
    const std::int64_t channels = models::backbone_traits<M>::in_channels(backbone);

    return detail::with_optimizer(r.optimizer, finetuning, r.fit.batch, [&]<template <class> class Opt>(detail::optimizer_tag<Opt>,
                                                                                                        auto opt_cfg, float lr) {
        using learner_t = supervised_learner<B, M, Opt>;
        typename learner_t::config cfg;
        cfg.backbone = backbone;
        cfg.classes = labelled.num_classes;
        cfg.task = labelled.task == data::task_kind::multiclass ? task_type::multiclass : task_type::multilabel;
        cfg.optimizer = opt_cfg;
        cfg.head_lr_scale = r.head_lr_scale;
        cfg.freeze_backbone = r.linear_probe;
        cfg.feature_norm = r.linear_probe;  // SimCLR's linear evaluation: batch norm before the classifier
        cfg.seed = r.seed;
        learner_t learner(ctx, cfg);
        auto fo = r.fit;
        fo.lr = lr;
        fo.warmup_steps = 0;
        check<data::data_error>(detail::load_init(r.init, fo, ctx, learner.backbone().state(), r.log) != 0, "finetune: init ",
                                r.init.string(), ": no backbone tensor matched");
        fo.metadata = models::checkpoint_metadata<M>(backbone, r.image_size);
        fo.metadata["classes"] = std::to_string(cfg.classes);
        fo.metadata["task"] = cfg.task == task_type::multiclass ? "multiclass" : "multilabel";
        fo.metadata["label-fraction"] = micle::detail::cat(r.label_fraction);
        fo.metadata["linear-probe"] = r.linear_probe ? "1" : "0";
        std::string names;
        for (const auto& c : labelled.class_names) names += (names.empty() ? "" : "\t") + c;
        fo.metadata["class-names"] = names;
        if (r.select_best) fo.best_metric = "val_auc";
        if (r.comm) learner.distribute(*r.comm, r.dist);  // rank 0's model and optimizer state everywhere
        if (lead)
            detail::write_config(fo, {{"command", "finetune"}, {"init", r.init.string()}, {"label_fraction", r.label_fraction},
                                      {"labelled_images", labelled.size()}, {"linear_probe", r.linear_probe},
                                      {"epochs", fo.epochs}, {"batch_size", fo.batch}, {"optimizer", r.optimizer.name},
                                      {"lr", lr}, {"image_size", r.image_size}, {"select", r.select_best ? "best" : "last"},
                                      {"seed", r.seed}, {"model", fo.metadata}, {"ranks", r.comm ? r.comm->size() : 1}});

        std::optional<validation<learner_t>> validate;
        if (r.val_every > 0)
            validate.emplace(learner, detail::unaugmented(*val, r.image_size, channels), r.val_every, 128, fo.workers);
        detail::optional_monitor<validation<learner_t>> monitor{validate};
        finetune_result out;
        out.labelled = labelled.size();
        if (r.linear_probe) {  // the backbone is frozen and the views are not augmented: features are computed once
            std::int64_t dim = 0;
            auto features = embed_all(
                learner, data::labeled_images(labelled, data::augment_config::eval(r.image_size), channels, r.seed, false),
                fo.batch, fo.workers, &dim);
            r.log(micle::detail::cat("linear probe on ", labelled.size(), " precomputed ", dim, "-d features",
                                     r.init.empty() ? " of a random-init backbone (the baseline of a probe)" : ""));
            static_cast<fit_result&>(out) = fit(learner, data::labeled_features(labelled, std::move(features), dim, r.seed), fo,
                                                monitor, std::forward<Callbacks>(callbacks)...);
        } else {
            static_cast<fit_result&>(out) =
                fit(learner, data::labeled_images(labelled, data::augment_config::finetune(r.image_size), channels, r.seed),
                    fo, monitor, std::forward<Callbacks>(callbacks)...);
        }
        out.selected = r.select_best && !out.best_checkpoint.empty() ? out.best_checkpoint : out.last_checkpoint;
        if (!out.selected.empty() && lead) detail::write_pointer(fo.run_dir, "selected", out.selected.filename().string());
        return out;
    });
}

/// The recipes with the ResNet backbone (what the trainer runs).
template <class B, class... Callbacks>
fit_result pretrain(context<B>& ctx, const data::dataset& images, std::optional<data::dataset> val, pretrain_recipe r,
                    Callbacks&&... callbacks) {
    return pretrain<models::resnet>(ctx, images, std::move(val), std::move(r), std::forward<Callbacks>(callbacks)...);
}
template <class B, class... Callbacks>
finetune_result finetune(context<B>& ctx, const data::dataset& pool, std::optional<data::dataset> val, finetune_recipe r,
                         Callbacks&&... callbacks) {
    return finetune<models::resnet>(ctx, pool, std::move(val), std::move(r), std::forward<Callbacks>(callbacks)...);
}

}  // namespace micle::train
