#pragma once
// micle::train::stop_on_signal - a run that is asked to stop (SIGTERM from Slurm's
// preemption or time limit, `scancel`, `kill`; SIGINT from Ctrl-C; SIGUSR1, which Open
// MPI's mpirun forwards to every rank and `sbatch --signal=USR1@T` sends ahead of a time
// limit) finishes the step it is in, checkpoints at that step and ends: train::fit with
//
//   mt::fit(model, pairs, opt, mt::progress(), mt::stop_on_signal());
//
// returns with stopped_early and a stop_reason naming the signal and the step, and
// `resume` continues bitwise from there. The first signal only sets a flag; the step in
// progress, the checkpoint and the loader's threads finish as after any other stop. In a
// data-parallel run every rank stops after the same step (fit agrees on a stop across the
// ranks), so one rank's signal is enough, and rank 0 writes the checkpoint. A second
// signal while the first is pending ends the process at once, as the signal's default
// action does (exit status 128 + N).
//
// The handlers are installed while fit runs (on_fit_begin) and the previous ones restored
// after it (on_fit_end, or the destructor when fit throws). The flag is process-wide:
// stop_on_signal::received() tells which signal stopped the last run, for the exit code.
#include <atomic>
#include <csignal>
#include <string>

#include <unistd.h>

#include "micle/core/error.hpp"
#include "micle/train/fit.hpp"

namespace micle::train {

class stop_on_signal {
public:
    /// The signals it handles.
    static constexpr int signals[] = {SIGTERM, SIGINT, SIGUSR1};

    stop_on_signal() = default;
    stop_on_signal(const stop_on_signal&) = delete;
    stop_on_signal& operator=(const stop_on_signal&) = delete;
    stop_on_signal(stop_on_signal&& o) noexcept : installed_(o.installed_) {
        for (int i = 0; i < count; ++i) previous_[i] = o.previous_[i];
        o.installed_ = false;
    }
    ~stop_on_signal() { restore(); }

    void on_fit_begin(const run_info&) {
        pending().store(0);
        received_signal().store(0);
        if (installed_) return;
        struct sigaction sa {};
        sa.sa_handler = &handle;
        sigemptyset(&sa.sa_mask);  // one handler at a time: a second signal waits for the first's
        for (const int sig : signals) sigaddset(&sa.sa_mask, sig);
        sa.sa_flags = SA_RESTART;  // a read or a wait in progress carries on
        for (int i = 0; i < count; ++i)
            check<error>(::sigaction(signals[i], &sa, &previous_[i]) == 0, "stop_on_signal: cannot install a handler for ",
                            name(signals[i]));
        installed_ = true;
    }
    void on_step(step_info& s) const {
        const int sig = pending().load();
        if (sig == 0) return;
        s.stop = true;
        s.stop_reason = micle::detail::cat("stopped by signal ", sig, " (", name(sig), ") at step ", s.step + 1);
    }
    void on_fit_end(const fit_result&) {
        received_signal().store(pending().load());
        restore();
    }

    /// The signal that stopped the last fit that ran with this callback (0: none).
    static int received() noexcept { return received_signal().load(); }

    static const char* name(int sig) noexcept {
        switch (sig) {
            case SIGTERM: return "SIGTERM";
            case SIGINT: return "SIGINT";
            case SIGUSR1: return "SIGUSR1";
            default: return "signal";
        }
    }

private:
    static constexpr int count = int(sizeof signals / sizeof signals[0]);
    static std::atomic<int>& pending() noexcept {
        static std::atomic<int> s{0};
        return s;
    }
    static std::atomic<int>& received_signal() noexcept {
        static std::atomic<int> s{0};
        return s;
    }
    // Async-signal-safe: a lock-free atomic, write(2), signal(2) and raise(3) only.
    static void handle(int sig) {
        static_assert(std::atomic<int>::is_always_lock_free);
        int expected = 0;
        if (!pending().compare_exchange_strong(expected, sig)) {  // the second one: end now
            static constexpr char now[] = "micle: a second signal: stopping at once, without a checkpoint\n";
            (void)!::write(2, now, sizeof now - 1);
            std::signal(sig, SIG_DFL);
            std::raise(sig);
            return;
        }
        static constexpr char msg[] =
            "micle: stop requested by a signal: finishing this step and checkpointing it (a second signal stops at once)\n";
        (void)!::write(2, msg, sizeof msg - 1);
    }
    void restore() noexcept {
        if (!installed_) return;
        for (int i = 0; i < count; ++i) ::sigaction(signals[i], &previous_[i], nullptr);
        installed_ = false;
    }

    struct sigaction previous_[count] {};
    bool installed_ = false;
};

}  // namespace micle::train
