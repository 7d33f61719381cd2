#pragma once
// The pieces of a data-parallel learner: its options, the gradient all-reduce in flat
// buckets, and the broadcast of rank 0's state at the start. A learner's
// distribute(comm, options) wires them (train/contrastive_learner.hpp); train::fit then
// gives each rank its slice of every global batch and lets rank 0 write the checkpoints.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/dist/communicator.hpp"
#include "micle/nn/parameter.hpp"
#include "micle/optim/optimizer.hpp"

namespace micle::dist {

struct options {
    /// Batch norm over the global batch (the paper's setting; N ranks x B/N then train what
    /// one process trains with B). false: each rank normalises its own slice.
    bool global_batch_norm = true;
    /// Gradients are summed over the ranks in flat buckets of about this many bytes.
    std::size_t bucket_bytes = std::size_t(25) << 20;
};

/// Sums the gradients of `params` over the ranks, in flat buckets of about `bucket_bytes`
/// filled in reverse parameter order (the order backward produces them), so a bucket is
/// one collective however many small tensors it holds.
template <class B>
class gradient_buckets {
public:
    gradient_buckets(std::vector<nn::parameter<B>*> params, std::size_t bucket_bytes)
        : params_(std::move(params)), bucket_values_(std::max<std::size_t>(bucket_bytes / sizeof(float), 1)) {}

    /// grad = scale x (sum over the ranks of grad), for every parameter.
    void all_reduce(context<B>& ctx, communicator& comm, float scale = 1.0f) {
        if constexpr (requires(tensor<B>& t) { t.host_buffer(); }) ctx.synchronize();
        flat_.clear();
        members_.clear();
        buckets_ = values_ = 0;
        for (auto it = params_.rbegin(); it != params_.rend(); ++it) {
            auto* p = *it;
            append(ctx, p->grad);
            members_.push_back(p);
            if (flat_.size() >= bucket_values_) flush(ctx, comm, scale);
        }
        if (!members_.empty()) flush(ctx, comm, scale);
    }
    /// Collectives per step (buckets) and the values they carry, for the log and the bench.
    std::size_t buckets() const noexcept { return buckets_; }
    std::size_t values() const noexcept { return values_; }

private:
    /// A gradient's values at the end of the flat buffer: straight from host memory where
    /// the backend has it (no copy per parameter per step), else through to_host.
    void append(context<B>& ctx, tensor<B>& g) {
        if constexpr (requires { g.host_buffer(); }) {
            const auto h = g.host_buffer();
            flat_.insert(flat_.end(), h.begin(), h.end());
        } else {
            const auto h = g.to_host(ctx);
            flat_.insert(flat_.end(), h.begin(), h.end());
        }
    }
    void flush(context<B>& ctx, communicator& comm, float scale) {
        comm.all_reduce_sum(std::span<float>(flat_));
        if (scale != 1.0f)
            for (auto& v : flat_) v *= scale;
        std::size_t at = 0;
        for (auto* p : members_) {
            if constexpr (requires { p->grad.host_buffer(); }) {
                auto h = p->grad.host_buffer();
                std::copy_n(flat_.begin() + std::ptrdiff_t(at), h.size(), h.begin());
                at += h.size();
            } else {
                const auto n = std::size_t(p->grad.numel());
                p->grad.assign(ctx, std::span<const float>(flat_.data() + at, n));
                at += n;
            }
        }
        ++buckets_;
        values_ += flat_.size();
        flat_.clear();
        members_.clear();
    }

    std::vector<nn::parameter<B>*> params_;
    std::size_t bucket_values_;
    std::vector<float> flat_;
    std::vector<nn::parameter<B>*> members_;
    std::size_t buckets_ = 0, values_ = 0;
};

/// Rank 0's parameters, buffers, counters and optimizer state on every rank: after it,
/// every rank holds the same model, however each was initialised or loaded.
template <class B>
void broadcast_state(context<B>& ctx, communicator& comm, const nn::state_list<B>& s, const std::vector<optim::state_entry>& opt) {
    if (comm.size() == 1) return;
    auto send = [&](tensor<B>& t) {
        auto v = t.to_host(ctx);
        comm.broadcast(std::span<float>(v), 0);
        t.assign(ctx, v);
    };
    for (auto* p : s.params) send(p->value);
    for (auto* b : s.buffers) send(b->value);
    for (auto* c : s.counters) comm.broadcast(std::span<std::int64_t>(&c->value, 1), 0);
    for (const auto& e : opt) {
        auto v = e.read();
        comm.broadcast(std::span<float>(v), 0);
        e.write(v);
    }
}

}  // namespace micle::dist
