#pragma once
// The progress line of a run (train::fit callback).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "micle/train/fit.hpp"

namespace micle::train {

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

}  // namespace micle::train
