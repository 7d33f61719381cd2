#pragma once
// The usual callbacks of micle::train::fit (fit.hpp explains the hooks):
//   progress()                     a progress line with ETA on stderr, an epoch summary
//   jsonl(path)                    every step and every epoch as a JSON line (metrics.jsonl)
//   stop_after_epoch(k)            end after epoch k, checkpointed (a time-limited job)
//   time_budget(seconds)           end after the step that passes the budget, checkpointed
//   validation(learner, val, n)    val_accuracy and val_auc of a supervised learner every n epochs
//   knn_monitor(learner, bank, val, n, {k, T})   knn_accuracy of the backbone's features
// A callback of one's own is a struct with the hooks it needs, or a lambda on step_info&.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "micle/data/labeled.hpp"
#include "micle/data/loader.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/knn.hpp"
#include "micle/train/metrics.hpp"

namespace micle::train {

/// The backbone features ([N, F], host) of every sample of `source` in its order
/// (data::labeled_images with shuffle off), computed in inference mode.
template <class Learner>
std::vector<float> embed_all(Learner& learner, const data::labeled_images& source, std::int64_t batch, int workers,
                             std::int64_t* dim = nullptr) {
    using B = typename Learner::backend;
    data::prefetch_loader<data::labeled_batch> loader([&](std::int64_t b) { return source.make_batch(0, b, batch); },
                                                      source.batches(batch), workers, 2 * workers);
    std::vector<float> out;
    while (auto x = loader.next()) {
        const auto& f = learner.embed(tensor<B>::from_host(learner.ctx(), x->dims, x->pixels));
        if (dim) *dim = f.shape()[1];
        const auto h = f.to_host(learner.ctx());
        out.insert(out.end(), h.begin(), h.end());
    }
    return out;
}

/// Class (or label) probabilities [N, K] of a supervised learner on every sample of `source`.
template <class Learner>
std::vector<float> predict_all(Learner& learner, const data::labeled_images& source, std::int64_t batch, int workers) {
    using B = typename Learner::backend;
    data::prefetch_loader<data::labeled_batch> loader([&](std::int64_t b) { return source.make_batch(0, b, batch); },
                                                      source.batches(batch), workers, 2 * workers);
    std::vector<float> out;
    while (auto x = loader.next()) {
        const auto p = learner.predict(tensor<B>::from_host(learner.ctx(), x->dims, x->pixels));
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

/// A progress line on a terminal (rewritten in place; every 20th step otherwise) with the
/// loss, learning rate, throughput and ETA, and one line per epoch.
class progress {
public:
    static constexpr bool lead_only = true;  ///< rank 0 of a data-parallel run reports
    explicit progress(std::FILE* out = stderr) : out_(out), tty_(::isatty(::fileno(out)) != 0) {}
    void on_fit_begin(const run_info& r) {
        if (!r.resumed_from.empty())
            std::fprintf(out_, "micle: resuming %s at epoch %lld, batch %lld\n", r.resumed_from.c_str(),
                         (long long)r.start_epoch + 1, (long long)r.start_batch);
    }
    /// Above this fraction of an epoch spent waiting for batches, the lines say so.
    static constexpr double loader_wait_shown = 0.1;

    void on_step(const step_info& s) {
        const double eta = s.seconds * double(s.steps_left) / double(std::max<std::int64_t>(s.steps_this_run, 1));
        const std::string wait = s.loader_wait_fraction > loader_wait_shown && s.batch > 0
                                     ? micle::detail::cat("  loader wait ", int(std::lround(100 * s.loader_wait_fraction)), "%")
                                     : std::string();
        if (tty_)
            std::fprintf(out_, "\r\033[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %.0fs%s",
                         (long long)s.epoch + 1, (long long)s.epochs, (long long)s.batch + 1, (long long)s.batches, s.loss,
                         s.lr, s.images_per_s, eta, wait.c_str());
        else if (s.batch + 1 == s.batches || s.batch % 20 == 0)
            std::fprintf(out_, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %.0fs%s\n", (long long)s.epoch + 1,
                         (long long)s.epochs, (long long)s.batch + 1, (long long)s.batches, s.loss, s.lr, s.images_per_s, eta,
                         wait.c_str());
        open_line_ = tty_;
    }
    void on_epoch_end(const epoch_info& e) {
        end_line();
        std::string metrics;
        for (const auto& [k, v] : e.metrics) metrics += micle::detail::cat(", ", k, " ", v);
        std::fprintf(out_, "epoch %lld: mean loss %.4f%s%s%s\n", (long long)e.epoch, e.mean_loss, metrics.c_str(),
                     e.checkpoint.empty() ? "" : ", checkpoint ", e.checkpoint.c_str());
        if (e.loader_wait_fraction > loader_wait_shown)
            std::fprintf(out_,
                         "micle: the steps waited for their batches %d%% of epoch %lld: decoding is the bottleneck; "
                         "more loader threads (--workers), or a prepared dataset (micle prepare --data SPEC --out FILE, then "
                         "--data FILE) that is decoded once, feed them faster\n",
                         int(std::lround(100 * e.loader_wait_fraction)), (long long)e.epoch);
    }
    void on_fit_end(const fit_result& r) {
        end_line();
        if (r.stopped_early) std::fprintf(out_, "micle: stopped: %s\n", r.stop_reason.c_str());
    }

private:
    void end_line() {
        if (open_line_) std::fprintf(out_, "\n");
        open_line_ = false;
    }
    std::FILE* out_;
    bool tty_, open_line_ = false;
};

/// Appends one JSON line per step ({"epoch", "step", "loss", "lr", "images_per_s"}) and
/// per epoch ({"epoch_end", "mean_loss", "seconds", "loader_wait_fraction", metrics...}) to
/// `path`, flushed line by line.
class jsonl {
public:
    static constexpr bool lead_only = true;  ///< rank 0 of a data-parallel run writes
    explicit jsonl(const std::filesystem::path& path) : path_(path), out_(open(path)) {
        check<value_error>(bool(out_), "jsonl: cannot write ", path);
    }
    void on_step(const step_info& s) {
        write({{"epoch", s.epoch}, {"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"images_per_s", s.images_per_s}});
    }
    void on_epoch_end(const epoch_info& e) {
        nlohmann::json j{{"epoch_end", e.epoch}, {"mean_loss", e.mean_loss}, {"seconds", e.seconds},
                         {"loader_wait_fraction", e.loader_wait_fraction}};
        for (const auto& [k, v] : e.metrics) j[k] = v;
        if (!e.checkpoint.empty()) j["checkpoint"] = e.checkpoint.filename().string();
        if (e.best) j["best"] = true;
        write(j);
    }

private:
    static std::ofstream open(const std::filesystem::path& path) {  // the run directory may not exist yet
        std::error_code ec;
        if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
        return std::ofstream(path, std::ios::app);
    }
    void write(const nlohmann::json& j) {
        out_ << j.dump() << '\n';
        out_.flush();
        check<value_error>(bool(out_), "jsonl: writing ", path_, " failed (disk full?)");
    }
    std::filesystem::path path_;
    std::ofstream out_;
};

/// Ends training after epoch `k` (its checkpoint written); resume continues the run.
struct stop_after_epoch {
    std::int64_t k;
    void on_epoch_end(epoch_info& e) const {
        if (e.epoch >= k && e.epoch < e.epochs) {
            e.stop = true;
            e.stop_reason = micle::detail::cat("stop after epoch ", k, " (resume continues)");
        }
    }
};

/// Ends training after the first step that ends past `seconds` of wall time, with a
/// checkpoint at that step (resume continues from it).
struct time_budget {
    double seconds;
    void on_step(step_info& s) const {
        if (s.seconds >= seconds) {
            s.stop = true;
            s.stop_reason = micle::detail::cat("the time budget of ", seconds, " s is spent");
        }
    }
};

/// Accuracy and macro AUC (val_accuracy, val_auc) of a supervised learner on a labelled
/// split, every `every` epochs (and at the last one).
template <class Learner>
class validation {
public:
    validation(Learner& learner, data::labeled_images val, std::int64_t every = 1, std::int64_t batch = 128, int workers = 2)
        : learner_(learner), val_(std::move(val)), every_(every), batch_(batch), workers_(workers) {
        check<value_error>(every >= 1 && batch >= 1, "validation: need every >= 1 and batch >= 1");
    }
    void on_validate(epoch_info& e) {
        if (e.epoch % every_ != 0 && e.epoch != e.epochs) return;
        const auto r = evaluate();
        e.metrics["val_accuracy"] = r.accuracy;
        e.metrics["val_auc"] = r.auc_macro;
    }
    /// The learner's metrics on the split now.
    metrics::classification_report evaluate() {
        const auto probs = predict_all(learner_, val_, batch_, workers_);
        const auto& d = val_.data();
        return d.task == data::task_kind::multiclass ? metrics::multiclass(probs, d.labels, d.num_classes)
                                                      : metrics::multilabel(probs, d.targets, d.num_classes);
    }

private:
    Learner& learner_;
    data::labeled_images val_;
    std::int64_t every_, batch_;
    int workers_;
};

/// kNN accuracy (knn_accuracy) of the backbone's features every `every` epochs: `bank`
/// (labelled training images) votes for the classes of `val`, as lightly and solo-learn
/// monitor pretraining. Both should be data::labeled_images without augmentation
/// (augment_config::eval) and without shuffling. Multi-class datasets only.
template <class Learner>
class knn_monitor {
public:
    knn_monitor(Learner& learner, data::labeled_images bank, data::labeled_images val, std::int64_t every = 1,
                knn_config cfg = {}, std::int64_t batch = 128, int workers = 2)
        : learner_(learner), bank_(std::move(bank)), val_(std::move(val)), every_(every), cfg_(cfg), batch_(batch),
          workers_(workers) {
        check<value_error>(bank_.data().task == data::task_kind::multiclass && val_.data().task == data::task_kind::multiclass,
                           "knn_monitor: needs multi-class labels");
        check<value_error>(every >= 1, "knn_monitor: every must be >= 1");
    }
    void on_validate(epoch_info& e) {
        if (e.epoch % every_ != 0 && e.epoch != e.epochs) return;
        e.metrics["knn_accuracy"] = accuracy();
    }
    double accuracy() {
        std::int64_t dim = 0;
        const auto bank = embed_all(learner_, bank_, batch_, workers_, &dim);
        const auto queries = embed_all(learner_, val_, batch_, workers_);
        const auto classes = std::max(bank_.data().num_classes, val_.data().num_classes);
        return knn_accuracy(bank, bank_.data().labels, queries, val_.data().labels, dim, classes, cfg_);
    }

private:
    Learner& learner_;
    data::labeled_images bank_, val_;
    std::int64_t every_;
    knn_config cfg_;
    std::int64_t batch_;
    int workers_;
};

}  // namespace micle::train
