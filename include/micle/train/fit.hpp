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
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "micle/core/concepts.hpp"
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

namespace detail {

/// One call of fit, in its phases: plan (the run's shape: batches per epoch, steps,
/// schedule), resume (where a resumed run starts), then per epoch train_epoch (its steps,
/// with mid-epoch checkpoints and stops) and end_epoch (validation, best selection, the
/// epoch's checkpoint, its callbacks), and finish. Every phase keeps the ranks of a
/// data-parallel run in step.
template <class Learner, class Source, class... Callbacks>
class fit_run {
    using B = typename Learner::backend;
    using Batch = decltype(std::declval<const Source&>().make_batch(0, 0, 1));

public:
    fit_run(Learner& learner, const Source& source, const fit_options& opt, Callbacks&... callbacks)
        : learner_(learner), source_(source), opt_(opt), callbacks_(callbacks...), comm_(communicator_of(learner)),
          ranks_(comm_.size()), lead_(comm_.rank() == 0) {}

    fit_result run() {
        plan();
        if (opt_.keep_large_blocks) keep_large_blocks();
        t_start_ = std::chrono::steady_clock::now();
        resume();
        each([&](auto& c) { on_fit_begin(c, info_); });
        steps_in_run_ = total_ - (start_epoch_ * batches_ + start_batch_);
        result_.epochs_done = start_epoch_;
        for (std::int64_t epoch = start_epoch_; epoch < opt_.epochs && !result_.stopped_early; ++epoch) {
            const auto mean_loss = train_epoch(epoch);
            if (!mean_loss) break;  // a stop ended the epoch early (checkpointed)
            if (end_epoch(epoch, *mean_loss)) break;
        }
        finish();
        return result_;
    }

private:
    /// The run's shape, after checking the options: batches per epoch, steps, the schedule.
    void plan() {
        if (ranks_ > 1) {
            check<value_error>(opt_.batch % ranks_ == 0, "fit: a global batch of ", opt_.batch, " does not split evenly over ",
                               ranks_, " ranks (use a multiple of ", ranks_, ")");
            check<value_error>(requires { source_.make_batch(0, 0, 1, 0, 1); },
                               "fit: this batch source cannot give a rank its slice of a batch (data-parallel runs need one)");
        }
        check<value_error>(opt_.epochs >= 1 && opt_.batch >= 1 && opt_.workers >= 1 && opt_.keep_last >= 1 &&
                               opt_.checkpoint_every >= 0,
                           "fit: need epochs >= 1, batch >= 1, workers >= 1, keep_last >= 1 and checkpoint_every >= 0");
        check<value_error>(std::isfinite(opt_.lr) && opt_.lr >= 0, "fit: the learning rate must be finite and >= 0, got ", opt_.lr);
        batches_ = source_.batches(opt_.batch);
        check<value_error>(batches_ >= 1, "fit: a batch of ", opt_.batch, " is larger than the ", source_.units(),
                           " units of an epoch");
        // Every rank takes part in every step: a shorter last batch with fewer units than there
        // are ranks is left out of a data-parallel run (a longer one is split unevenly). A last
        // batch of one unit is left out too: batch norm over the features of one image (a
        // linear probe's) has a single value per channel.
        if (ranks_ > 1 ? units_in(batches_ - 1) < ranks_ : batches_ > 1 && units_in(batches_ - 1) == 1) --batches_;
        check<value_error>(batches_ >= 1, "fit: no batch of ", opt_.batch, " gives each of ", ranks_, " ranks a unit");
        total_ = batches_ * opt_.epochs;
        const std::int64_t warmup = opt_.warmup_steps < 0 ? total_ / 10 : std::min(opt_.warmup_steps, total_);
        schedule_ = optim::warmup_cosine{opt_.lr, warmup, total_, opt_.final_lr};
        saving_ = !opt_.run_dir.empty();
        info_ = run_info{opt_.epochs, batches_, total_, 0, 0, {}, comm_.rank(), ranks_};
    }

    /// Where the run starts: run_dir/latest when resuming, else the beginning.
    void resume() {
        namespace fs = std::filesystem;
        if (saving_) {
            fs::create_directories(opt_.run_dir);
            if (opt_.resume && fs::exists(opt_.run_dir / "latest")) {
                result_.last_checkpoint = latest_checkpoint(opt_.run_dir);
                const auto meta = load_checkpoint(result_.last_checkpoint, learner_);
                auto number = [&](const char* key, std::int64_t fallback) {
                    const auto it = meta.find(key);
                    return it == meta.end() ? fallback : std::stoll(it->second);
                };
                start_epoch_ = number("epoch", 0);
                start_batch_ = number("batch", 0);
                if (const auto it = meta.find("best-value"); it != meta.end()) best_value_ = std::stod(it->second);
                if (fs::exists(opt_.run_dir / "best")) result_.best_checkpoint = best_checkpoint(opt_.run_dir);
                info_.resumed_from = result_.last_checkpoint;
                check<value_error>(start_batch_ < batches_, "fit: ", result_.last_checkpoint, " is ", start_batch_,
                                   " batches into an epoch of ", batches_, " (another batch size?)");
            }
        }
        info_.start_epoch = start_epoch_;
        info_.start_batch = start_batch_;
    }

    /// The steps of one epoch; its mean loss, or nothing when a stop ended it early.
    std::optional<double> train_epoch(std::int64_t epoch) {
        const std::int64_t b0 = epoch == start_epoch_ ? start_batch_ : 0;
        data::prefetch_loader<Batch> loader([this, epoch, b0](std::int64_t b) { return make(epoch, b0 + b); }, batches_ - b0,
                                            opt_.workers, 2 * opt_.workers);
        epoch_start_ = std::chrono::steady_clock::now();
        loader_ = &loader;
        device_batches<B, Batch> feed(learner_.ctx(), loader);
        double loss_sum = 0;
        std::int64_t steps_in_epoch = 0;
        for (std::int64_t b = b0; b < batches_; ++b) {
            const auto t0 = std::chrono::steady_clock::now();
            Batch batch;
            const tensor<B>* x = nullptr;
            check<backend_error>(feed.next(batch, x), "fit: the loader ended before batch ", b, " of epoch ", epoch);
            const std::int64_t step = learner_.steps_done();
            const float lr = schedule_(step);
            float loss = 0;
            try {
                loss = learner_.step(*x, batch, lr);
            } catch (const nonfinite_loss_error& e) {
                result_.diverged = true;
                result_.stop_reason = e.what();
                finish();
                throw nonfinite_loss_error(micle::detail::cat(
                    e.what(), "; the last good checkpoint is ",
                    result_.last_checkpoint.empty() ? std::string("(none yet)") : result_.last_checkpoint.string()));
            }
            ++steps_this_run_;
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // this rank's rows scaled to the global batch (views per pair, images per sample)
            const std::int64_t images = ranks_ > 1 ? x->shape()[0] * units_in(b) /
                                                         dist::slice_of(units_in(b), comm_.rank(), ranks_).count()
                                                   : x->shape()[0];
            step_info s{epoch, opt_.epochs, b, batches_, step, total_, images, double(loss), double(lr),
                        double(images) / std::max(dt, 1e-9), elapsed(), wait_fraction(), steps_this_run_,
                        steps_in_run_ - steps_this_run_, false, {}};
            each([&](auto& c) { on_step(c, s); });
            if (ranks_ > 1) {  // one rank's stop stops all
                const bool mine = s.stop;
                s.stop = comm_.sum(mine ? 1.0 : 0.0) > 0;
                if (s.stop && !mine) s.stop_reason = "another rank stopped training";
            }
            loss_sum += loss;
            ++steps_in_epoch;
            const bool last_batch = b + 1 == batches_;
            if (s.stop) {
                result_.stopped_early = true;
                result_.stop_reason = s.stop_reason.empty() ? "a callback stopped training" : s.stop_reason;
            }
            if (saving_ && !last_batch &&
                (s.stop || (opt_.checkpoint_every > 0 && learner_.steps_done() % opt_.checkpoint_every == 0)))
                save(epoch, b + 1, {}, false);
            if (s.stop && !last_batch) {
                loader_ = nullptr;
                return std::nullopt;
            }
        }
        last_wait_fraction_ = wait_fraction();
        loader_ = nullptr;
        return loss_sum / double(std::max<std::int64_t>(steps_in_epoch, 1));
    }

    /// Validation, best selection, the epoch's checkpoint and its callbacks; true when the
    /// run is to stop here.
    bool end_epoch(std::int64_t epoch, double mean_loss) {
        epoch_info e{epoch + 1, opt_.epochs, mean_loss, {}, {}, false, elapsed(), last_wait_fraction_, false, {}};
        each([&](auto& c) { on_validate(c, e); });
        if (!opt_.best_metric.empty()) {
            const auto it = e.metrics.find(opt_.best_metric);
            if (it != e.metrics.end() && std::isfinite(it->second) && it->second > best_value_) {
                best_value_ = it->second;
                e.best = true;
            }
        }
        if (saving_) save(epoch + 1, 0, e.metrics, e.best);
        e.checkpoint = result_.last_checkpoint;
        result_.epochs_done = epoch + 1;
        each([&](auto& c) { on_epoch_end(c, e); });
        if (ranks_ > 1) e.stop = comm_.sum(e.stop ? 1.0 : 0.0) > 0;
        if (e.stop && !result_.stopped_early) {
            result_.stopped_early = epoch + 1 < opt_.epochs;
            result_.stop_reason = e.stop_reason.empty() ? "a callback stopped training" : e.stop_reason;
            return true;
        }
        return false;
    }

    /// A checkpoint after `batch` batches of `epoch` (rank 0 writes; the others wait for it).
    void save(std::int64_t epoch, std::int64_t batch, const std::map<std::string, double>& metrics, bool best) {
        auto meta = opt_.metadata;
        meta["epoch"] = std::to_string(epoch);
        meta["batch"] = std::to_string(batch);
        for (const auto& [k, v] : metrics) meta["metric." + k] = metric_text(v);
        if (best_value_ > -HUGE_VAL) meta["best-value"] = metric_text(best_value_);
        const auto name = checkpoint_name(epoch, batch);
        if (lead_) {
            result_.last_checkpoint = save_checkpoint(opt_.run_dir, name, learner_, meta);
            if (best) mark_best(opt_.run_dir, result_.last_checkpoint);
            prune_checkpoints(opt_.run_dir, opt_.keep_last);
        } else {
            result_.last_checkpoint = opt_.run_dir / name;
        }
        if (best) result_.best_checkpoint = result_.last_checkpoint;
        if (ranks_ > 1) comm_.barrier();
    }

    void finish() {
        result_.steps_done = learner_.steps_done();
        result_.seconds = elapsed();
        each([&](auto& c) { on_fit_end(c, result_); });
    }

    /// Units in batch b: opt.batch, or fewer in a source's shorter last batch (labeled_images).
    std::int64_t units_in(std::int64_t b) const { return std::min<std::int64_t>(opt_.batch, source_.units() - b * opt_.batch); }
    /// Batch b of `epoch`, or this rank's slice of it.
    Batch make(std::int64_t epoch, std::int64_t b) const {
        if constexpr (requires { source_.make_batch(0, 0, 1, 0, 1); })
            if (ranks_ > 1) {
                const auto mine = dist::slice_of(units_in(b), comm_.rank(), ranks_);
                return source_.make_batch(epoch, b, opt_.batch, mine.begin, mine.count());
            }
        return source_.make_batch(epoch, b, opt_.batch);
    }
    /// `hook` on every callback in order; report-only callbacks on rank 0 alone.
    template <class Hook>
    void each(Hook&& hook) {
        std::apply([&](auto&... c) { ((lead_ || !lead_only<decltype(c)>() ? hook(c) : void()), ...); }, callbacks_);
    }
    double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count(); }
    double wait_fraction() const {
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start_).count();
        return loader_ && wall > 0 ? loader_->wait_seconds() / wall : 0.0;
    }

    Learner& learner_;
    const Source& source_;
    const fit_options& opt_;
    std::tuple<Callbacks&...> callbacks_;
    dist::communicator& comm_;
    const int ranks_;
    const bool lead_;
    std::int64_t batches_ = 0, total_ = 0, start_epoch_ = 0, start_batch_ = 0, steps_in_run_ = 0, steps_this_run_ = 0;
    optim::warmup_cosine schedule_;
    bool saving_ = false;
    double best_value_ = -HUGE_VAL, last_wait_fraction_ = 0;
    run_info info_;
    fit_result result_;
    std::chrono::steady_clock::time_point t_start_, epoch_start_;
    const data::prefetch_loader<Batch>* loader_ = nullptr;  // the epoch's, while it runs
};

}  // namespace detail

/// Trains `learner` on `source` for opt.epochs epochs, calling `callbacks`' hooks. In a
/// data-parallel run (the learner distributed over R ranks) every rank calls fit with the
/// same arguments: each takes its slice (opt.batch / R units) of every global batch of
/// opt.batch, rank 0 writes the checkpoints while the others wait, and stop requests of
/// any rank's callbacks stop every rank at the same step.
template <class Learner, BatchSource Source, class... Callbacks>
fit_result fit(Learner& learner, const Source& source, const fit_options& opt, Callbacks&&... callbacks) {
    return detail::fit_run<Learner, Source, std::remove_reference_t<Callbacks>...>(learner, source, opt, callbacks...).run();
}

}  // namespace micle::train
