#pragma once
// Rules that end a run early with a checkpoint, for time-limited jobs (train::fit callbacks).
#include <cstdint>

#include "micle/train/fit.hpp"

namespace micle::train {

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

}  // namespace micle::train
