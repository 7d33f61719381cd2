#pragma once
// A parallel, order-preserving, bounded prefetch loader. Worker threads make batches
// (decode + augment) ahead of the consumer, at most `prefetch` batches ahead; `next()`
// hands them out in index order. Each batch is a pure function of its index, so results
// do not depend on the number of workers. An exception thrown while making a batch is
// rethrown by the `next()` that would have returned it. `wait_seconds()` is how long the
// consumer has waited in `next()` for batches not yet made: a training loop's loader cost.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "micle/core/error.hpp"

namespace micle::data {

template <class Batch>
class prefetch_loader {
public:
    using producer = std::function<Batch(std::int64_t)>;

    prefetch_loader(producer make, std::int64_t batches, int workers, int prefetch = 4)
        : make_(std::move(make)), total_(batches), prefetch_(std::max(1, prefetch)) {
        check<value_error>(workers >= 1, "prefetch_loader: need at least one worker, got ", workers);
        for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
    }
    prefetch_loader(const prefetch_loader&) = delete;
    prefetch_loader& operator=(const prefetch_loader&) = delete;
    ~prefetch_loader() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }

    /// The next batch in order, or nothing after the last.
    std::optional<Batch> next() {
        std::unique_lock lock(mu_);
        if (consumed_ >= total_) return std::nullopt;
        if (ready_.count(consumed_) == 0) {
            const auto t0 = std::chrono::steady_clock::now();
            cv_.wait(lock, [&] { return ready_.count(consumed_) != 0; });
            waited_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        auto node = ready_.extract(consumed_);
        ++consumed_;
        lock.unlock();
        cv_.notify_all();
        if (node.mapped().error) std::rethrow_exception(node.mapped().error);
        return std::move(*node.mapped().batch);
    }

    /// Seconds `next()` has spent waiting for a batch (called from the consumer's thread).
    double wait_seconds() const {
        std::lock_guard lock(mu_);
        return waited_;
    }

private:
    struct slot {
        std::optional<Batch> batch;
        std::exception_ptr error;
    };

    void work() {
        for (;;) {
            std::int64_t index;
            {
                std::unique_lock lock(mu_);
                cv_.wait(lock, [&] { return stop_ || (issued_ < total_ && issued_ < consumed_ + prefetch_); });
                if (stop_) return;
                index = issued_++;
            }
            slot s;
            try {
                s.batch.emplace(make_(index));
            } catch (...) {
                s.error = std::current_exception();
            }
            {
                std::lock_guard lock(mu_);
                ready_.emplace(index, std::move(s));
            }
            cv_.notify_all();
        }
    }

    producer make_;
    std::int64_t total_;
    std::int64_t prefetch_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::int64_t issued_ = 0, consumed_ = 0;
    bool stop_ = false;
    double waited_ = 0;
    std::map<std::int64_t, slot> ready_;
    std::vector<std::thread> threads_;
};

}  // namespace micle::data
