#pragma once
// The pieces of a data-parallel learner: its options, the gradient all-reduce in flat
// buckets, and the broadcast of rank 0's state at the start. A learner's
// distribute(comm, options) wires them (train/contrastive_learner.hpp); train::fit then
// gives each rank its slice of every global batch and lets rank 0 write the checkpoints.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "micle/core/backend.hpp"
#include "micle/core/concepts.hpp"
#include "micle/core/communicator.hpp"
#include "micle/nn/parameter.hpp"
#include "micle/optim/optimizer.hpp"

namespace micle::dist {

struct options {
    /// Batch norm over the global batch (the paper's setting; N ranks x B/N then train what
    /// one process trains with B). false: each rank normalises its own slice.
    bool global_batch_norm = true;
    /// Gradients are summed over the ranks in flat buckets of about this many bytes.
    std::size_t bucket_bytes = std::size_t(25) << 20;
    /// Start each bucket's all-reduce as soon as backward has written its gradients, so
    /// communication overlaps the rest of backward. false: all of it after backward.
    bool overlap = true;
};

/// Sums the gradients of `params` over the ranks in flat buckets of about `bucket_bytes`,
/// filled in reverse parameter order (about the order backward produces them), so a bucket
/// is one collective however many small tensors it holds.
///
/// Overlap: once armed (arm(ctx, comm), which the learners' distribute() does), each
/// parameter tells the buckets when backward has written its gradient (parameter::on_grad);
/// a bucket whose gradients are all written starts its all-reduce at once
/// (communicator::start_all_reduce_sum: MPI_Iallreduce, NCCL on the stream) while backward
/// computes the layers below. all_reduce(), after backward, starts what is left, waits for
/// everything and writes the sums back. Unarmed, all_reduce() does all of it after backward.
template <class B>
class gradient_buckets {
public:
    gradient_buckets(std::vector<nn::parameter<B>*> params, std::size_t bucket_bytes) : params_(std::move(params)) {
        const std::size_t cap = std::max<std::size_t>(bucket_bytes / sizeof(float), 1);
        slot_.resize(params_.size());
        for (std::size_t k = params_.size(); k-- > 0;) {
            if (buckets_.empty() || buckets_.back().values >= cap) buckets_.emplace_back();
            auto& b = buckets_.back();
            slot_[k] = buckets_.size() - 1;
            b.members.push_back(k);
            b.values += std::size_t(params_[k]->value.numel());
        }
        for (auto& b : buckets_) b.waiting = b.members.size();
    }
    gradient_buckets(const gradient_buckets&) = delete;
    gradient_buckets& operator=(const gradient_buckets&) = delete;
    ~gradient_buckets() { disarm(); }

    /// Starts each bucket's all-reduce over `comm` as soon as backward has written all of
    /// its gradients. Every backward must then be followed by all_reduce(ctx, comm).
    void arm(context<B>& ctx, communicator& comm) {
        for (std::size_t k = 0; k < params_.size(); ++k)
            params_[k]->on_grad = [this, k, &ctx, &comm] { written(ctx, comm, k); };
        armed_ = true;
    }
    void disarm() {
        if (!armed_) return;
        for (auto* p : params_) p->on_grad = nullptr;
        armed_ = false;
    }

    /// grad = the sum over the ranks of grad, for every parameter.
    void all_reduce(context<B>& ctx, communicator& comm) {
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < buckets_.size(); ++i)
            if (!buckets_[i].started) start(ctx, comm, i);
        comm.finish_started();
        for (auto& b : buckets_) {
            if (!b.on_device) unpack(ctx, b);
            b.started = b.on_device = false;
            b.waiting = b.members.size();
        }
        as_laid_out_ = 0;
        for (const auto& b : buckets_) as_laid_out_ += b.raw ? 1 : 0;
        agreed_ = false;
        values_ = 0;
        for (const auto& b : buckets_) values_ += b.values;
        wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        started_early_ = started_during_backward_;
        started_during_backward_ = 0;
    }
    /// Collectives per step (buckets) and the values they carry, for the log and the bench.
    std::size_t buckets() const noexcept { return buckets_.size(); }
    std::size_t values() const noexcept { return values_; }
    /// Of the last step: buckets started while backward still ran, and the seconds
    /// all_reduce() took after backward (the communication that did not overlap).
    std::size_t started_during_backward() const noexcept { return started_early_; }
    /// Of the last step: buckets summed in the layouts their gradients lie in, because
    /// every rank held them alike (the rest went through plain order; see agree()).
    std::size_t buckets_as_laid_out() const noexcept { return as_laid_out_; }
    double wait_seconds() const noexcept { return wait_seconds_; }

private:
    struct bucket {
        std::vector<std::size_t> members;  // indices into params_, in reverse parameter order
        std::size_t values = 0, waiting = 0;
        std::vector<float> flat;
        bool started = false, on_device = false;
        bool raw = false;  // summed in the layouts the gradients lie in (every rank agreed on them)
    };

    void written(context<B>& ctx, communicator& comm, std::size_t k) {
        auto& b = buckets_[slot_[k]];
        if (b.started || b.waiting == 0) return;  // a gradient written twice in one step
        if (--b.waiting == 0) {
            start(ctx, comm, slot_[k]);
            ++started_during_backward_;
        }
        comm.progress();
    }

    void start(context<B>& ctx, communicator& comm, std::size_t i) {
        auto& b = buckets_[i];
        b.started = true;
        if constexpr (device_tensors<B>) {  // a GPU backend and NCCL: the gradients where they are
            if (comm.device_memory()) {
                b.on_device = true;
                comm.group_begin();
                for (auto k : b.members) {
                    auto& g = params_[k]->grad;
                    comm.start_all_reduce_sum(std::span<float>(g.f32(), std::size_t(g.numel())));
                }
                comm.group_end();
                return;
            }
        }
        if constexpr (host_tensors<B>) ctx.synchronize();
        if constexpr (host_layouts<B>)
            if (!agreed_) agree(comm);
        b.flat.clear();
        b.flat.reserve(b.values);
        for (auto k : b.members) append(ctx, *params_[k], b.raw, b.flat);
        comm.start_all_reduce_sum(std::span<float>(b.flat));
    }

    /// Where tensors have layouts (oneDNN), each rank chose its weights' layouts at its
    /// first forward, for its own slice of the batch: ranks with slices of different sizes
    /// (or other CPUs) may hold a gradient in different layouts. Once a step, before the
    /// first bucket, the ranks exchange one fingerprint of each bucket's layouts; a bucket
    /// that is laid out alike everywhere is summed as its buffers lie (padding included,
    /// which is zero everywhere), the others in plain order (a reorder each way per
    /// gradient). One small all_gather a step; every rank decides alike.
    /// (Called only where host_layouts<B>.)
    void agree(communicator& comm) {
        std::vector<std::int64_t> mine(buckets_.size()), all(buckets_.size() * std::size_t(comm.size()));
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            std::uint64_t h = 0;
            for (auto k : buckets_[i].members) h = (h ^ tensor<B>::layout_id(params_[k]->value.desc())) * 1099511628211ull + k;
            mine[i] = std::int64_t(h);
        }
        comm.all_gather(std::span<const std::int64_t>(mine), std::span<std::int64_t>(all));
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            bool same = true;
            for (std::size_t r = 0; r < std::size_t(comm.size()); ++r) same = same && all[r * buckets_.size() + i] == mine[i];
            buckets_[i].raw = same;
        }
        agreed_ = true;
    }

    /// A parameter's gradient at the end of `flat`: in its values' layout where the ranks
    /// agreed on it (`raw`), else in plain order; straight from host memory where the
    /// backend has it, else through to_host.
    static void append(context<B>& ctx, nn::parameter<B>& p, bool raw, std::vector<float>& flat) {
        auto& g = p.grad;
        if constexpr (host_layouts<B>) {
            const auto to_md = raw ? p.value.desc() : tensor<B>::plain_layout(g.shape());
            const auto at = flat.size(), n = to_md.get_size() / sizeof(float);
            flat.resize(at + n);
            tensor<B>::relayout_host(g.desc(), g.host_buffer(), to_md, std::span<float>(flat.data() + at, n));
        } else if constexpr (requires { g.host_buffer(); }) {
            const auto h = g.host_buffer();
            flat.insert(flat.end(), h.begin(), h.end());
        } else {
            const auto h = g.to_host(ctx);
            flat.insert(flat.end(), h.begin(), h.end());
        }
    }
    void unpack(context<B>& ctx, bucket& b) {
        std::size_t at = 0;
        for (auto k : b.members) {
            auto& g = params_[k]->grad;
            if constexpr (host_layouts<B>) {
                const auto from_md = b.raw ? params_[k]->value.desc() : tensor<B>::plain_layout(g.shape());
                const auto n = from_md.get_size() / sizeof(float);
                tensor<B>::relayout_host(from_md, std::span<const float>(b.flat.data() + at, n), g.desc(), g.host_buffer());
                at += n;
            } else if constexpr (requires { g.host_buffer(); }) {
                auto h = g.host_buffer();
                std::copy_n(b.flat.begin() + std::ptrdiff_t(at), h.size(), h.begin());
                at += h.size();
            } else {
                const auto n = std::size_t(g.numel());
                g.assign(ctx, std::span<const float>(b.flat.data() + at, n));
                at += n;
            }
        }
    }

    std::vector<nn::parameter<B>*> params_;
    std::vector<std::size_t> slot_;  // the bucket of each parameter
    std::vector<bucket> buckets_;
    bool armed_ = false, agreed_ = false;
    std::size_t values_ = 0, started_during_backward_ = 0, started_early_ = 0, as_laid_out_ = 0;
    double wait_seconds_ = 0;
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
