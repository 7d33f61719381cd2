#pragma once
// micle::train::fit - the training loop, as library code (dlib's dnn_trainer owns its
// loop the same way): a learner (contrastive_learner or supervised_learner), a batch
// source (contrastive::augmented_views, contrastive::multi_instance, data::labeled_images,
// data::labeled_features) and fit_options; then any number of callbacks.
//
//   micle::train::fit(learner, pairs, {.epochs = 100, .batch = 256, .lr = lr, .run_dir = "runs/micle"},
//                     mt::progress(), mt::jsonl("runs/micle/metrics.jsonl"), mt::knn_monitor(learner, bank, val),
//                     [](mt::step_info& s) { if (s.loss < 0.1) s.stop = true; });
//
// What fit does: warmup + cosine learning-rate schedule over all steps; batches decoded
// and augmented on `workers` threads, each handed to the backend one step ahead; a
// checkpoint at every epoch end (and every `checkpoint_every` steps), `latest` moved
// atomically, the newest `keep_last` kept plus `best` (the highest `best_metric`);
// `resume` continues from `latest`, mid-epoch checkpoints included, with the same batches
// and randomness as an uninterrupted run. A NaN or infinite loss changes no parameter:
// fit stops and throws nonfinite_loss_error naming the last good checkpoint.
//
// Callbacks are small objects with any subset of these hooks (ensmallen's style); a
// callable taking step_info& is an on_step hook:
//   on_fit_begin(const run_info&)   on_step(step_info&)          (set .stop to end the run)
//   on_validate(epoch_info&)        put metrics into .metrics, before the checkpoint
//   on_epoch_end(epoch_info&)       after the checkpoint (set .stop to end the run)
//   on_fit_end(const fit_result&)
// Hooks run in the order the callbacks are given. train/callbacks.hpp has the usual ones.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>

#include "micle/core/error.hpp"
#include "micle/core/malloc.hpp"
#include "micle/data/loader.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/core/communicator.hpp"
#include "micle/train/device_batches.hpp"

namespace micle::train {

struct fit_options {
    std::int64_t epochs = 10;
    std::int64_t batch = 64;            ///< pairs (contrastive) or images (supervised) per step
    float lr = 0.3f;                    ///< peak learning rate (optim::scaled_lr: SimCLR's base x batch / 256)
    std::int64_t warmup_steps = -1;     ///< linear warmup steps; -1: 10% of all steps
    float final_lr = 0.0f;              ///< where the cosine decay ends
    std::filesystem::path run_dir;      ///< checkpoints go here; empty: no checkpoints
    bool resume = false;                ///< continue from run_dir/latest when there is one
    std::int64_t checkpoint_every = 0;  ///< also a checkpoint every N steps (0: at epoch ends only)
    int keep_last = 1;                  ///< checkpoints kept (the best one is kept besides)
    std::string best_metric;            ///< an epoch metric, higher is better, that chooses `best`
    int workers = 2;                    ///< loader threads (results do not depend on it)
    bool keep_large_blocks = true;      ///< tune malloc for image-sized buffers (core/malloc.hpp; the whole process)
    std::map<std::string, std::string> metadata;  ///< saved with every checkpoint
};

struct run_info {
    std::int64_t epochs, batches_per_epoch, total_steps;
    std::int64_t start_epoch, start_batch;  ///< where this run starts (after a resume)
    std::filesystem::path resumed_from;     ///< empty unless resumed
    int rank = 0, ranks = 1;                ///< of a data-parallel run (learner.distribute)
};

struct step_info {
    std::int64_t epoch, epochs;       ///< epoch is 0-based
    std::int64_t batch, batches;      ///< batch within the epoch, 0-based
    std::int64_t step, total_steps;   ///< the learner's step counter before this step
    std::int64_t images;              ///< in this global batch, every rank's (views count for contrastive batches)
    double loss, lr, images_per_s;
    double seconds;                   ///< since fit began
    double loader_wait_fraction;      ///< of this epoch's time so far, spent waiting for batches
    std::int64_t steps_this_run;      ///< steps since fit began, this one included
    std::int64_t steps_left;          ///< steps after this one, to the last epoch's end
    bool stop = false;                ///< set by a callback: checkpoint and end after this step
    std::string stop_reason;
};

struct epoch_info {
    std::int64_t epoch, epochs;       ///< epochs completed
    double mean_loss;                 ///< over this run's steps of the epoch
    std::map<std::string, double> metrics;
    std::filesystem::path checkpoint; ///< this epoch's (on_epoch_end; empty without run_dir)
    bool best = false;                ///< it became `best`
    double seconds;                   ///< since fit began
    /// The time the epoch's steps waited for the loader over the epoch's wall time (its
    /// steps, from the loader's start to the last step's end; validation not included).
    double loader_wait_fraction = 0;
    bool stop = false;
    std::string stop_reason;
};

struct fit_result {
    std::int64_t epochs_done = 0, steps_done = 0;
    std::filesystem::path last_checkpoint, best_checkpoint;
    bool stopped_early = false;
    std::string stop_reason;
    bool diverged = false;            ///< a non-finite loss ended the run (fit then throws)
    double seconds = 0;
};

namespace detail {
/// Callbacks that report (progress, jsonl) declare `static constexpr bool lead_only = true`:
/// in a data-parallel run only rank 0 calls them.
template <class C>
constexpr bool lead_only() {
    if constexpr (requires { std::remove_cvref_t<C>::lead_only; }) return std::remove_cvref_t<C>::lead_only;
    return false;
}
template <class C>
void on_fit_begin(C& c, const run_info& r) {
    if constexpr (requires { c.on_fit_begin(r); }) c.on_fit_begin(r);
}
template <class C>
void on_step(C& c, step_info& s) {
    if constexpr (requires { c.on_step(s); })
        c.on_step(s);
    else if constexpr (std::is_invocable_v<C&, step_info&>)
        c(s);
}
template <class C>
void on_validate(C& c, epoch_info& e) {
    if constexpr (requires { c.on_validate(e); }) c.on_validate(e);
}
template <class C>
void on_epoch_end(C& c, epoch_info& e) {
    if constexpr (requires { c.on_epoch_end(e); }) c.on_epoch_end(e);
}
template <class C>
void on_fit_end(C& c, const fit_result& r) {
    if constexpr (requires { c.on_fit_end(r); }) c.on_fit_end(r);
}
inline std::string metric_text(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

/// The ranks a learner trains with: its communicator (learner.distribute), or one process.
template <class Learner>
dist::communicator& communicator_of(Learner& learner) {
    if constexpr (requires { learner.communicator(); })
        return learner.communicator();
    else
        return dist::self();
}
}  // namespace detail

/// Trains `learner` on `source` for opt.epochs epochs, calling `callbacks`' hooks. In a
/// data-parallel run (the learner distributed over R ranks) every rank calls fit with the
/// same arguments: each takes its slice (opt.batch / R units) of every global batch of
/// opt.batch, rank 0 writes the checkpoints while the others wait, and stop requests of
/// any rank's callbacks stop every rank at the same step.
template <class Learner, class Source, class... Callbacks>
fit_result fit(Learner& learner, const Source& source, const fit_options& opt, Callbacks&&... callbacks) {
    namespace fs = std::filesystem;
    using B = typename Learner::backend;
    using Batch = decltype(source.make_batch(0, 0, 1));
    dist::communicator& comm = detail::communicator_of(learner);
    const int ranks = comm.size();
    const bool lead = comm.rank() == 0;
    if (ranks > 1) {
        check<value_error>(opt.batch % ranks == 0, "fit: a global batch of ", opt.batch, " does not split evenly over ", ranks,
                           " ranks (use a multiple of ", ranks, ")");
        check<value_error>(requires { source.make_batch(0, 0, 1, 0, 1); },
                           "fit: this batch source cannot give a rank its slice of a batch (data-parallel runs need one)");
    }
    // Units in batch b: opt.batch, or fewer in a source's shorter last batch (labeled_images).
    auto units_in = [&](std::int64_t b) { return std::min<std::int64_t>(opt.batch, source.units() - b * opt.batch); };
    auto make = [&](std::int64_t epoch, std::int64_t b) {
        if constexpr (requires { source.make_batch(0, 0, 1, 0, 1); })
            if (ranks > 1) {
                const auto mine = dist::slice_of(units_in(b), comm.rank(), ranks);
                return source.make_batch(epoch, b, opt.batch, mine.begin, mine.count());
            }
        return source.make_batch(epoch, b, opt.batch);
    };
    // Hooks of report-only callbacks run on rank 0 alone.
    auto each = [&](auto hook) {
        (void)hook;  // no callbacks: nothing to call
        (
            [&] {
                if (lead || !detail::lead_only<Callbacks>()) hook(callbacks);
            }(),
            ...);
    };
    check<value_error>(opt.epochs >= 1 && opt.batch >= 1 && opt.workers >= 1 && opt.keep_last >= 1 &&
                           opt.checkpoint_every >= 0,
                       "fit: need epochs >= 1, batch >= 1, workers >= 1, keep_last >= 1 and checkpoint_every >= 0");
    check<value_error>(std::isfinite(opt.lr) && opt.lr >= 0, "fit: the learning rate must be finite and >= 0, got ", opt.lr);
    std::int64_t batches = source.batches(opt.batch);
    check<value_error>(batches >= 1, "fit: a batch of ", opt.batch, " is larger than the ", source.units(),
                       " units of an epoch");
    // Every rank takes part in every step: a shorter last batch with fewer units than there
    // are ranks is left out of a data-parallel run (a longer one is split unevenly). A last
    // batch of one unit is left out too: batch norm over the features of one image (a
    // linear probe's) has a single value per channel.
    if (ranks > 1 ? units_in(batches - 1) < ranks : batches > 1 && units_in(batches - 1) == 1) --batches;
    check<value_error>(batches >= 1, "fit: no batch of ", opt.batch, " gives each of ", ranks, " ranks a unit");
    const std::int64_t total = batches * opt.epochs;
    const std::int64_t warmup = opt.warmup_steps < 0 ? total / 10 : std::min(opt.warmup_steps, total);
    const optim::warmup_cosine schedule{opt.lr, warmup, total, opt.final_lr};
    const bool saving = !opt.run_dir.empty();
    if (opt.keep_large_blocks) keep_large_blocks();
    const auto t_start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };

    fit_result result;
    std::int64_t start_epoch = 0, start_batch = 0;
    double best_value = -HUGE_VAL;
    run_info info{opt.epochs, batches, total, 0, 0, {}, comm.rank(), ranks};
    if (saving) {
        fs::create_directories(opt.run_dir);
        if (opt.resume && fs::exists(opt.run_dir / "latest")) {
            result.last_checkpoint = latest_checkpoint(opt.run_dir);
            const auto meta = load_checkpoint(result.last_checkpoint, learner);
            auto number = [&](const char* key, std::int64_t fallback) {
                const auto it = meta.find(key);
                return it == meta.end() ? fallback : std::stoll(it->second);
            };
            start_epoch = number("epoch", 0);
            start_batch = number("batch", 0);
            if (const auto it = meta.find("best-value"); it != meta.end()) best_value = std::stod(it->second);
            if (fs::exists(opt.run_dir / "best")) result.best_checkpoint = best_checkpoint(opt.run_dir);
            info.resumed_from = result.last_checkpoint;
            check<value_error>(start_batch < batches, "fit: ", result.last_checkpoint, " is ", start_batch,
                               " batches into an epoch of ", batches, " (another batch size?)");
        }
    }
    info.start_epoch = start_epoch;
    info.start_batch = start_batch;
    each([&](auto& c) { detail::on_fit_begin(c, info); });

    auto save = [&](std::int64_t epoch, std::int64_t batch, const std::map<std::string, double>& metrics, bool best) {
        auto meta = opt.metadata;
        meta["epoch"] = std::to_string(epoch);
        meta["batch"] = std::to_string(batch);
        for (const auto& [k, v] : metrics) meta["metric." + k] = detail::metric_text(v);
        if (best_value > -HUGE_VAL) meta["best-value"] = detail::metric_text(best_value);
        const auto name = checkpoint_name(epoch, batch);
        if (lead) {  // rank 0 writes; the others wait until the checkpoint is complete
            result.last_checkpoint = save_checkpoint(opt.run_dir, name, learner, meta);
            if (best) mark_best(opt.run_dir, result.last_checkpoint);
            prune_checkpoints(opt.run_dir, opt.keep_last);
        } else {
            result.last_checkpoint = opt.run_dir / name;
        }
        if (best) result.best_checkpoint = result.last_checkpoint;
        if (ranks > 1) comm.barrier();
    };
    auto finish = [&] {
        result.steps_done = learner.steps_done();
        result.seconds = elapsed();
        each([&](auto& c) { detail::on_fit_end(c, result); });
    };

    const std::int64_t steps_in_run = total - (start_epoch * batches + start_batch);
    std::int64_t steps_this_run = 0;
    result.epochs_done = start_epoch;
    for (std::int64_t epoch = start_epoch; epoch < opt.epochs && !result.stopped_early; ++epoch) {
        const std::int64_t b0 = epoch == start_epoch ? start_batch : 0;
        data::prefetch_loader<Batch> loader(
            [&make, epoch, b0](std::int64_t b) { return make(epoch, b0 + b); }, batches - b0,
            opt.workers, 2 * opt.workers);
        const auto epoch_start = std::chrono::steady_clock::now();
        auto wait_fraction = [&] {
            const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
            return wall > 0 ? loader.wait_seconds() / wall : 0.0;
        };
        device_batches<B, Batch> feed(learner.ctx(), loader);
        double loss_sum = 0;
        std::int64_t steps_in_epoch = 0;
        bool complete = true;
        for (std::int64_t b = b0; b < batches; ++b) {
            const auto t0 = std::chrono::steady_clock::now();
            Batch batch;
            const tensor<B>* x = nullptr;
            check<backend_error>(feed.next(batch, x), "fit: the loader ended before batch ", b, " of epoch ", epoch);
            const std::int64_t step = learner.steps_done();
            const float lr = schedule(step);
            float loss = 0;
            try {
                loss = learner.step(*x, batch, lr);
            } catch (const nonfinite_loss_error& e) {
                result.diverged = true;
                result.stop_reason = e.what();
                finish();
                throw nonfinite_loss_error(micle::detail::cat(
                    e.what(), "; the last good checkpoint is ",
                    result.last_checkpoint.empty() ? std::string("(none yet)") : result.last_checkpoint.string()));
            }
            ++steps_this_run;
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // this rank's rows scaled to the global batch (views per pair, images per sample)
            const std::int64_t images =
                ranks > 1 ? x->shape()[0] * units_in(b) / dist::slice_of(units_in(b), comm.rank(), ranks).count() : x->shape()[0];
            step_info s{epoch, opt.epochs, b, batches, step, total, images, double(loss), double(lr),
                        double(images) / std::max(dt, 1e-9), elapsed(), wait_fraction(), steps_this_run,
                        steps_in_run - steps_this_run, false, {}};
            each([&](auto& c) { detail::on_step(c, s); });
            if (ranks > 1) {  // one rank's stop stops all
                const bool mine = s.stop;
                s.stop = comm.sum(mine ? 1.0 : 0.0) > 0;
                if (s.stop && !mine) s.stop_reason = "another rank stopped training";
            }
            loss_sum += loss;
            ++steps_in_epoch;
            const bool last_batch = b + 1 == batches;
            if (s.stop) {
                result.stopped_early = true;
                result.stop_reason = s.stop_reason.empty() ? "a callback stopped training" : s.stop_reason;
            }
            if (saving && !last_batch &&
                (s.stop || (opt.checkpoint_every > 0 && learner.steps_done() % opt.checkpoint_every == 0)))
                save(epoch, b + 1, {}, false);
            if (s.stop && !last_batch) {
                complete = false;
                break;
            }
        }
        if (!complete) break;
        epoch_info e{epoch + 1, opt.epochs, loss_sum / double(std::max<std::int64_t>(steps_in_epoch, 1)), {}, {}, false,
                     elapsed(), wait_fraction(), false, {}};
        each([&](auto& c) { detail::on_validate(c, e); });
        if (!opt.best_metric.empty()) {
            const auto it = e.metrics.find(opt.best_metric);
            if (it != e.metrics.end() && std::isfinite(it->second) && it->second > best_value) {
                best_value = it->second;
                e.best = true;
            }
        }
        if (saving) save(epoch + 1, 0, e.metrics, e.best);
        e.checkpoint = result.last_checkpoint;
        result.epochs_done = epoch + 1;
        each([&](auto& c) { detail::on_epoch_end(c, e); });
        if (ranks > 1) e.stop = comm.sum(e.stop ? 1.0 : 0.0) > 0;
        if (e.stop && !result.stopped_early) {
            result.stopped_early = epoch + 1 < opt.epochs;
            result.stop_reason = e.stop_reason.empty() ? "a callback stopped training" : e.stop_reason;
            break;
        }
    }
    finish();
    return result;
}

}  // namespace micle::train
