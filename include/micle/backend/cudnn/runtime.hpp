#pragma once
// CUDA runtime pieces of the GPU backend: error checking that names the failed call,
// device discovery, and the per-context device runtime (one device, one stream, a caching
// allocator of device memory and a pinned host staging buffer).
//
// Everything here is plain host code; the kernels are in kernels.cuh.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "micle/core/error.hpp"

namespace micle::cudnn_detail {

[[noreturn]] inline void fail(const char* library, const char* call, const std::string& status, const char* file,
                              int line) {
    throw backend_error(detail::cat(library, " call ", call, " failed: ", status, " (", file, ":", line, ")"));
}

inline void check_status(cudaError_t s, const char* call, const char* file, int line) {
    if (s != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky-free error state for the next call
        fail("CUDA", call, detail::cat(cudaGetErrorName(s), ": ", cudaGetErrorString(s)), file, line);
    }
}
inline void check_status(cudnnStatus_t s, const char* call, const char* file, int line) {
    if (s != CUDNN_STATUS_SUCCESS) fail("cuDNN", call, cudnnGetErrorString(s), file, line);
}
inline void check_status(cublasStatus_t s, const char* call, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS)
        fail("cuBLAS", call, detail::cat(cublasGetStatusName(s), ": ", cublasGetStatusString(s)), file, line);
}

// Checks a CUDA, cuDNN or cuBLAS status and throws micle::backend_error naming the call.
#define MICLE_CUDA_CHECK(call) ::micle::cudnn_detail::check_status((call), #call, __FILE__, __LINE__)

/// A dimension for a CUDA library that takes int.
inline int to_int_dim(std::int64_t v) {
    check(v >= 0 && v <= 0x7fffffff, "cudnn backend: dimension ", v, " does not fit a CUDA library's int");
    return static_cast<int>(v);
}

/// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
inline int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

/// Why there is no device, for skip messages and errors ("" when there is one).
inline std::string no_device_reason() {
    int n = 0;
    const cudaError_t s = cudaGetDeviceCount(&n);
    if (s != cudaSuccess) {
        (void)cudaGetLastError();
        return detail::cat("no CUDA device (", cudaGetErrorName(s), ": ", cudaGetErrorString(s), ")");
    }
    return n == 0 ? std::string("no CUDA device") : std::string();
}

/// One device, one stream, and the device memory of every tensor made on it.
///
/// Device memory is cached: a freed block goes to a free list by size and is handed out
/// again without cudaMalloc/cudaFree (which synchronise the device). All work runs on the
/// one stream, so a block freed by the host while kernels still read it is only reused by
/// work enqueued later on the same stream: stream order makes that safe. When cudaMalloc
/// fails, cached blocks are released and the allocation is tried once more.
///
/// Tensors hold a shared_ptr to their runtime, so it outlives every tensor made on it.
class device_runtime {
public:
    explicit device_runtime(int device) : device_(device) {
        const std::string why = no_device_reason();
        check<backend_error>(why.empty(), "micle::context<cudnn>: ", why);
        check<backend_error>(device >= 0 && device < device_count(), "micle::context<cudnn>: device ", device,
                             " does not exist (", device_count(), " CUDA devices)");
        MICLE_CUDA_CHECK(cudaSetDevice(device_));
        MICLE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    }
    device_runtime(const device_runtime&) = delete;
    device_runtime& operator=(const device_runtime&) = delete;
    ~device_runtime() {
        (void)cudaSetDevice(device_);
        (void)cudaStreamSynchronize(stream_);
        release_cached();
        if (pinned_) (void)cudaFreeHost(pinned_);
        (void)cudaStreamDestroy(stream_);
    }

    int device() const noexcept { return device_; }
    cudaStream_t stream() const noexcept { return stream_; }
    void synchronize() { MICLE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    /// Device memory of at least `bytes` (rounded up to 512 bytes); nullptr for 0 bytes.
    void* allocate(std::size_t bytes) {
        if (bytes == 0) return nullptr;
        bytes = round_up(bytes);
        std::lock_guard lock(mutex_);
        // A cached block at most twice the size asked for.
        if (auto it = free_.lower_bound(bytes); it != free_.end() && it->first <= 2 * bytes) {
            void* p = it->second;
            in_use_ += it->first;
            cached_ -= it->first;
            sizes_[p] = it->first;
            free_.erase(it);
            return p;
        }
        void* p = nullptr;
        MICLE_CUDA_CHECK(cudaSetDevice(device_));
        cudaError_t s = cudaMalloc(&p, bytes);
        if (s == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            MICLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
            release_cached_locked();
            s = cudaMalloc(&p, bytes);
        }
        if (s != cudaSuccess) {
            (void)cudaGetLastError();
            throw backend_error(detail::cat("micle::context<cudnn>: cannot allocate ", bytes, " bytes on CUDA device ",
                                            device_, " (", cudaGetErrorString(s), "; ", in_use_,
                                            " bytes in use by micle tensors)"));
        }
        in_use_ += bytes;
        sizes_[p] = bytes;
        return p;
    }

    /// Returns a block from allocate() to the cache.
    void release(void* p) noexcept {
        if (!p) return;
        std::lock_guard lock(mutex_);
        const auto it = sizes_.find(p);
        if (it == sizes_.end()) return;
        in_use_ -= it->second;
        cached_ += it->second;
        free_.emplace(it->second, p);
        sizes_.erase(it);
    }

    /// Frees every cached (unused) block back to CUDA.
    void release_cached() {
        std::lock_guard lock(mutex_);
        release_cached_locked();
    }

    std::size_t bytes_in_use() const noexcept { return in_use_; }
    std::size_t bytes_cached() const noexcept { return cached_; }

    /// Page-locked host memory of at least `bytes`, for host<->device copies; kept and
    /// reused. The caller synchronises the stream before reusing it for another copy.
    void* pinned(std::size_t bytes) {
        if (bytes <= pinned_bytes_) return pinned_;
        if (pinned_) {
            MICLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
            MICLE_CUDA_CHECK(cudaFreeHost(pinned_));
            pinned_ = nullptr;
            pinned_bytes_ = 0;
        }
        MICLE_CUDA_CHECK(cudaMallocHost(&pinned_, bytes));
        pinned_bytes_ = bytes;
        return pinned_;
    }

private:
    static std::size_t round_up(std::size_t b) { return (b + 511) / 512 * 512; }
    void release_cached_locked() noexcept {
        for (auto& [bytes, p] : free_) (void)cudaFree(p);
        free_.clear();
        cached_ = 0;
    }

    int device_;
    cudaStream_t stream_ = nullptr;
    std::mutex mutex_;
    std::multimap<std::size_t, void*> free_;
    std::map<void*, std::size_t> sizes_;
    std::size_t in_use_ = 0, cached_ = 0;
    void* pinned_ = nullptr;
    std::size_t pinned_bytes_ = 0;
};

/// A device array of trivially copyable T (labels, group ids, partial sums) from a
/// context's allocator.
template <class T>
class device_array {
public:
    device_array() = default;
    device_array(device_array&& o) noexcept { swap(o); }
    device_array& operator=(device_array&& o) noexcept {
        device_array tmp(std::move(o));
        swap(tmp);
        return *this;
    }
    device_array(const device_array&) = delete;
    device_array& operator=(const device_array&) = delete;
    ~device_array() {
        if (rt_) rt_->release(ptr_);
    }

    /// At least n elements (contents unspecified after growth).
    T* ensure(const std::shared_ptr<device_runtime>& rt, std::size_t n) {
        if (rt_ != rt || n > size_) {
            device_array tmp;
            tmp.rt_ = rt;
            tmp.ptr_ = static_cast<T*>(rt->allocate(n * sizeof(T)));
            tmp.size_ = n;
            swap(tmp);
        }
        return ptr_;
    }
    /// Copies host values in (on the runtime's stream; returns once the host values have
    /// been read, so the source may go away).
    T* upload(const std::shared_ptr<device_runtime>& rt, const T* src, std::size_t n) {
        ensure(rt, n);
        if (n > 0) {
            MICLE_CUDA_CHECK(cudaMemcpyAsync(ptr_, src, n * sizeof(T), cudaMemcpyHostToDevice, rt->stream()));
            rt->synchronize();
        }
        return ptr_;
    }
    /// Copies the first n elements out (waits for the stream).
    void download(T* dst, std::size_t n) const {
        if (n == 0) return;
        MICLE_CUDA_CHECK(cudaMemcpyAsync(dst, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, rt_->stream()));
        rt_->synchronize();
    }
    T* get() const noexcept { return ptr_; }

private:
    void swap(device_array& o) noexcept {
        std::swap(rt_, o.rt_);
        std::swap(ptr_, o.ptr_);
        std::swap(size_, o.size_);
    }
    std::shared_ptr<device_runtime> rt_;
    T* ptr_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace micle::cudnn_detail
