#pragma once
// The NCCL communicator (CMake target micle::nccl, which defines MICLE_HAS_NCCL): one GPU
// per rank, collectives on the learner's CUDA stream, bootstrapped over another
// communicator (MPI across processes; any rank count works the same way):
//
//   micle::dist::launch ranks(argc, argv);                    // MPI under mpirun/srun
//   cudnn_options o;  o.device = micle::dist::local_rank();   // device = local rank
//   micle::context<micle::cudnn> ctx(o);
//   micle::dist::nccl_communicator nccl(ranks.comm(), ctx);   // NCCL id broadcast over MPI
//   learner.distribute(nccl);
//
// Collectives take device pointers (run in place on the stream, ordered with the learner's
// kernels: no host synchronisation) or host pointers (staged through a device buffer and
// synchronised, for the small per-step exchanges of the host-side code). The gradient
// all-reduce (dist::gradient_buckets) hands NCCL the gradients where they lie on the device,
// one NCCL group per bucket.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <string>

#include "micle/backend/cudnn/runtime.hpp"
#include "micle/core/communicator.hpp"

namespace micle::dist {

namespace nccl_detail {
inline void check_nccl(ncclResult_t rc, const char* what) {
    if (rc == ncclSuccess || rc == ncclInProgress) return;
    throw comm_error(micle::detail::cat("NCCL ", what, " failed: ", ncclGetErrorString(rc)));
}
inline ncclDataType_t type(dtype t) {
    switch (t) {
        case dtype::f32: return ncclFloat32;
        case dtype::f64: return ncclFloat64;
        default: return ncclInt64;
    }
}
/// True for memory the device can address directly (device or managed allocations).
inline bool on_device(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}
}  // namespace nccl_detail

class nccl_communicator final : public communicator {
public:
    /// A communicator over the ranks of `bootstrap` (rank r here is rank r there), on
    /// `device`, running its collectives on `stream`. Every rank of `bootstrap` must call it.
    nccl_communicator(communicator& bootstrap, int device, cudaStream_t stream)
        : rank_(bootstrap.rank()), size_(bootstrap.size()), device_(device), stream_(stream) {
        MICLE_CUDA_CHECK(cudaSetDevice(device_));
        // The 128-byte unique id goes from rank 0 to every rank as 16 int64 values.
        static_assert(sizeof(ncclUniqueId) % sizeof(std::int64_t) == 0);
        std::int64_t words[sizeof(ncclUniqueId) / sizeof(std::int64_t)] = {};
        ncclUniqueId id{};
        if (rank_ == 0) {
            nccl_detail::check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
            std::memcpy(words, &id, sizeof id);
        }
        bootstrap.broadcast(std::span<std::int64_t>(words), 0);
        std::memcpy(&id, words, sizeof id);
        nccl_detail::check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
        cudaDeviceProp prop{};
        MICLE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
        description_ = micle::detail::cat("NCCL ", NCCL_MAJOR, ".", NCCL_MINOR, ", rank ", rank_, " of ", size_, " on ",
                                          prop.name, " (device ", device_, "), bootstrapped over ",
                                          bootstrap.description());
    }
    /// On the device and stream of a GPU context (anything with runtime().device() and stream()).
    template <class Ctx>
        requires requires(const Ctx& c) {
            c.runtime().device();
            c.stream();
        }
    nccl_communicator(communicator& bootstrap, const Ctx& ctx)
        : nccl_communicator(bootstrap, ctx.runtime().device(), ctx.stream()) {}
    nccl_communicator(const nccl_communicator&) = delete;
    nccl_communicator& operator=(const nccl_communicator&) = delete;
    ~nccl_communicator() override {
        if (staging_) (void)cudaFree(staging_);
        if (comm_) (void)ncclCommDestroy(comm_);
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    std::string description() const override { return description_; }
    bool device_memory() const override { return true; }
    void barrier() override {
        double one = 1;
        all_reduce_sum(std::span<double>(&one, 1));  // host-staged: returns once every rank got here
    }
    void group_begin() override { nccl_detail::check_nccl(ncclGroupStart(), "ncclGroupStart"); }
    void group_end() override { nccl_detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd"); }
    ncclComm_t handle() const noexcept { return comm_; }
    cudaStream_t stream() const noexcept { return stream_; }

protected:
    void all_reduce_sum_raw(void* data, std::size_t count, dtype t) override {
        in_place(data, count, t, [&](const void* in, void* out) {
            return ncclAllReduce(in, out, count, nccl_detail::type(t), ncclSum, comm_, stream_);
        }, "ncclAllReduce");
    }
    void all_gather_raw(const void* in, void* out, std::size_t count, dtype t) override {
        staged_two(in, count, out, count * std::size_t(size_), t, [&](const void* i, void* o) {
            return ncclAllGather(i, o, count, nccl_detail::type(t), comm_, stream_);
        }, "ncclAllGather");
    }
    void reduce_scatter_sum_raw(const void* in, void* out, std::size_t count, dtype t) override {
        staged_two(in, count * std::size_t(size_), out, count, t, [&](const void* i, void* o) {
            return ncclReduceScatter(i, o, count, nccl_detail::type(t), ncclSum, comm_, stream_);
        }, "ncclReduceScatter");
    }
    void broadcast_raw(void* data, std::size_t count, dtype t, int root) override {
        check<value_error>(root >= 0 && root < size_, "broadcast: root ", root, " of ", size_, " ranks");
        in_place(data, count, t, [&](const void* in, void* out) {
            return ncclBroadcast(in, out, count, nccl_detail::type(t), root, comm_, stream_);
        }, "ncclBroadcast");
    }

private:
    /// A device buffer of at least `bytes` for host-staged collectives.
    void* staging(std::size_t bytes) {
        if (bytes > staging_bytes_) {
            if (staging_) MICLE_CUDA_CHECK(cudaFree(staging_));
            staging_ = nullptr;
            MICLE_CUDA_CHECK(cudaMalloc(&staging_, bytes));
            staging_bytes_ = bytes;
        }
        return staging_;
    }
    /// An in-place collective on `data`: directly on device memory, else through the
    /// staging buffer and back, synchronised.
    template <class F>
    void in_place(void* data, std::size_t count, dtype t, F&& call, const char* what) {
        if (count == 0) return;
        MICLE_CUDA_CHECK(cudaSetDevice(device_));
        if (nccl_detail::on_device(data)) {
            nccl_detail::check_nccl(call(data, data), what);
            return;
        }
        const std::size_t bytes = count * size_of(t);
        void* d = staging(bytes);
        MICLE_CUDA_CHECK(cudaMemcpyAsync(d, data, bytes, cudaMemcpyDefault, stream_));
        nccl_detail::check_nccl(call(d, d), what);
        MICLE_CUDA_CHECK(cudaMemcpyAsync(data, d, bytes, cudaMemcpyDefault, stream_));
        finish(what);
    }
    /// A collective from `in` (n_in values) to `out` (n_out values), staged when either is
    /// host memory.
    template <class F>
    void staged_two(const void* in, std::size_t n_in, void* out, std::size_t n_out, dtype t, F&& call, const char* what) {
        if (n_in == 0 && n_out == 0) return;
        MICLE_CUDA_CHECK(cudaSetDevice(device_));
        if (nccl_detail::on_device(in) && nccl_detail::on_device(out)) {
            nccl_detail::check_nccl(call(in, out), what);
            return;
        }
        const std::size_t in_bytes = n_in * size_of(t), out_bytes = n_out * size_of(t);
        auto* d = static_cast<char*>(staging(in_bytes + out_bytes));
        MICLE_CUDA_CHECK(cudaMemcpyAsync(d, in, in_bytes, cudaMemcpyDefault, stream_));
        nccl_detail::check_nccl(call(d, d + in_bytes), what);
        MICLE_CUDA_CHECK(cudaMemcpyAsync(out, d + in_bytes, out_bytes, cudaMemcpyDefault, stream_));
        finish(what);
    }
    /// Waits for the stream; a peer that failed shows up as NCCL's asynchronous error.
    void finish(const char* what) {
        const cudaError_t s = cudaStreamSynchronize(stream_);
        ncclResult_t async = ncclSuccess;
        (void)ncclCommGetAsyncError(comm_, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            (void)ncclCommAbort(comm_);
            comm_ = nullptr;
            throw comm_error(micle::detail::cat("NCCL ", what, ": ", ncclGetErrorString(async)));
        }
        MICLE_CUDA_CHECK(s);
    }

    int rank_ = 0, size_ = 1, device_ = 0;
    cudaStream_t stream_ = nullptr;
    ncclComm_t comm_ = nullptr;
    void* staging_ = nullptr;
    std::size_t staging_bytes_ = 0;
    std::string description_;
};

}  // namespace micle::dist
