#pragma once
// The communicator: how the ranks of a data-parallel run exchange tensors. The interface
// is declared here, in core/, so that the layers that take part in a distributed step
// (nn's cross-replica batch norm, contrastive's global negatives) hold one without
// depending on dist/, which implements it and wires the learners (data_parallel.hpp).
// It lives in namespace micle::dist with its implementations. One interface, chosen at
// run time like an optimizer, with three implementations:
//   single_process  (here; the default: rank 0 of 1, every collective a copy or nothing)
//   mpi             (micle/dist/mpi.hpp; Open MPI across processes and machines, host memory)
//   nccl            (micle/dist/nccl.hpp; one GPU per rank, bootstrapped over MPI)
// Collectives take host memory (and, where device_memory() says so, device memory: NCCL
// runs those on the learner's stream). Every rank calls the same collectives in the same
// order with the same counts (rank-major layouts). A collective on host memory has
// finished when it returns. Sums are element-wise; all_gather and reduce_scatter split
// buffers into `size()` equal blocks.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "micle/core/error.hpp"

namespace micle::dist {

/// A collective that failed, or a peer that is gone: the run cannot go on.
class comm_error : public error {
public:
    using error::error;
};

enum class dtype : std::uint8_t { f32, f64, i64 };
template <class T>
constexpr dtype dtype_of() {
    if constexpr (std::is_same_v<T, float>) return dtype::f32;
    else if constexpr (std::is_same_v<T, double>) return dtype::f64;
    else {
        static_assert(std::is_same_v<T, std::int64_t>, "communicator: float, double or std::int64_t buffers");
        return dtype::i64;
    }
}
inline std::size_t size_of(dtype t) { return t == dtype::f32 ? 4 : 8; }

class communicator {
public:
    virtual ~communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    /// What it runs on, for the log ("single process", "MPI, 4 ranks on 2 hosts").
    virtual std::string description() const = 0;
    virtual void barrier() = 0;
    /// True when collectives also take device pointers (NCCL), enqueued on its stream.
    virtual bool device_memory() const { return false; }
    /// Collectives between group_begin() and group_end() may be launched as one (NCCL
    /// groups); elsewhere each runs when called.
    virtual void group_begin() {}
    virtual void group_end() {}

    /// Element-wise sum over the ranks, in place.
    template <class T>
    void all_reduce_sum(std::span<T> data) {
        all_reduce_sum_raw(data.data(), data.size(), dtype_of<T>());
    }
    /// Every rank's `in` (the same count on every rank) into `out`, rank-major.
    template <class T>
    void all_gather(std::span<const T> in, std::span<T> out) {
        check<value_error>(out.size() == in.size() * std::size_t(size()), "all_gather: ", in.size(), " values a rank into ",
                           out.size(), " for ", size(), " ranks");
        all_gather_raw(in.data(), out.data(), in.size(), dtype_of<T>());
    }
    /// The element-wise sum over the ranks of `in`, whose block r (in.size() / size()
    /// values) goes to rank r's `out`.
    template <class T>
    void reduce_scatter_sum(std::span<const T> in, std::span<T> out) {
        check<value_error>(in.size() == out.size() * std::size_t(size()), "reduce_scatter_sum: ", in.size(),
                           " values for blocks of ", out.size(), " on ", size(), " ranks");
        reduce_scatter_sum_raw(in.data(), out.data(), out.size(), dtype_of<T>());
    }
    /// Rank `root`'s `data` to every rank.
    template <class T>
    void broadcast(std::span<T> data, int root = 0) {
        broadcast_raw(data.data(), data.size(), dtype_of<T>(), root);
    }
    /// Starts an element-wise sum over the ranks of `data`, in place, that completes by
    /// finish_started(): the gradient buckets start one while backward goes on (overlap).
    /// `data` must stay untouched until then. Default: done at once (blocking).
    virtual void start_all_reduce_sum(std::span<float> data) { all_reduce_sum(data); }
    /// Lets started collectives advance (MPI progresses them inside its calls).
    virtual void progress() {}
    /// Waits for every collective start_all_reduce_sum started.
    virtual void finish_started() {}
    /// A value summed over the ranks.
    double sum(double v) {
        all_reduce_sum(std::span<double>(&v, 1));
        return v;
    }

protected:
    virtual void all_reduce_sum_raw(void* data, std::size_t count, dtype t) = 0;
    virtual void all_gather_raw(const void* in, void* out, std::size_t count, dtype t) = 0;
    virtual void reduce_scatter_sum_raw(const void* in, void* out, std::size_t count, dtype t) = 0;
    virtual void broadcast_raw(void* data, std::size_t count, dtype t, int root) = 0;
};

/// One process: rank 0 of 1. Needs no MPI to build or run.
class single_process final : public communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    std::string description() const override { return "single process"; }
    void barrier() override {}

protected:
    void all_reduce_sum_raw(void*, std::size_t, dtype) override {}
    void all_gather_raw(const void* in, void* out, std::size_t count, dtype t) override { copy(in, out, count, t); }
    void reduce_scatter_sum_raw(const void* in, void* out, std::size_t count, dtype t) override { copy(in, out, count, t); }
    void broadcast_raw(void*, std::size_t, dtype, int root) override {
        check<value_error>(root == 0, "broadcast: root ", root, " of a single process");
    }

private:
    static void copy(const void* in, void* out, std::size_t count, dtype t) {
        if (in != out && count) std::memmove(out, in, count * size_of(t));
    }
};

/// The communicator of runs that do not ask for another.
inline communicator& self() {
    static single_process s;
    return s;
}

/// Rank r's share of `n` items split into `size` contiguous blocks as equal as can be
/// (the first n % size blocks one larger): [begin, end).
struct slice {
    std::int64_t begin, end;
    std::int64_t count() const { return end - begin; }
};
inline slice slice_of(std::int64_t n, int rank, int size) {
    const std::int64_t q = n / size, r = n % size;
    const std::int64_t begin = rank * q + std::min<std::int64_t>(rank, r);
    return {begin, begin + q + (rank < r ? 1 : 0)};
}

}  // namespace micle::dist
