#pragma once
// upload_queue on the GPU: batch k+1 goes host -> pinned buffer -> device on a copy
// stream of its own while step k computes on the context's stream; events order the two.
//
// Per slot (two): a pinned host buffer, a device buffer of the plain NCHW batch, and the
// NHWC tensor handed out. stage() (1) records on the compute stream that everything
// enqueued so far - the steps that read this slot's previous batch - must finish before
// the copy stream touches the slot, (2) waits on the host until the slot's previous
// copy has left its pinned buffer, (3) packs the values into the pinned buffer (one
// memcpy), then enqueues the copy and the NCHW -> NHWC transposition on the copy stream.
// next() makes the compute stream wait for that copy. Device buffers are taken from the
// context's allocator after step (1), so blocks freed by earlier steps are safe to reuse.
#include <cuda_runtime.h>

#include <array>
#include <cstring>
#include <span>

#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/upload.hpp"

namespace micle {

template <>
class upload_queue<cudnn> {
public:
    upload_queue() = default;
    upload_queue(const upload_queue&) = delete;
    upload_queue& operator=(const upload_queue&) = delete;
    ~upload_queue() {
        if (copy_) (void)cudaStreamSynchronize(copy_);
        for (auto& s : slots_) {
            if (s.pinned) (void)cudaFreeHost(s.pinned);
            if (s.copied) (void)cudaEventDestroy(s.copied);
            if (s.consumed) (void)cudaEventDestroy(s.consumed);
        }
        if (copy_) (void)cudaStreamDestroy(copy_);
    }

    void stage(context<cudnn>& ctx, const shape& s, std::span<const float> values) {
        check(count_ < 2, "upload_queue: two batches are staged and none was taken");
        check(static_cast<std::int64_t>(values.size()) == s.numel(), "upload_queue::stage: ", values.size(),
              " values for shape ", s);
        init(ctx);
        slot& sl = slots_[static_cast<std::size_t>((head_ + count_) % 2)];
        MICLE_CUDA_CHECK(cudaEventRecord(sl.consumed, ctx.stream()));
        MICLE_CUDA_CHECK(cudaStreamWaitEvent(copy_, sl.consumed, 0));
        if (sl.used) MICLE_CUDA_CHECK(cudaEventSynchronize(sl.copied));
        const std::size_t bytes = values.size() * sizeof(float);
        if (bytes > sl.pinned_bytes) {
            if (sl.pinned) MICLE_CUDA_CHECK(cudaFreeHost(sl.pinned));
            sl.pinned = nullptr;
            MICLE_CUDA_CHECK(cudaMallocHost(&sl.pinned, bytes));
            sl.pinned_bytes = bytes;
        }
        if (bytes > 0) std::memcpy(sl.pinned, values.data(), bytes);
        sl.t.ensure(ctx, s);
        if (s.rank() == 4) {
            float* plain = sl.plain.ensure(ctx.runtime_ptr(), values.size());
            MICLE_CUDA_CHECK(cudaMemcpyAsync(plain, sl.pinned, bytes, cudaMemcpyHostToDevice, copy_));
            cudnn_detail::kernels::nchw_to_nhwc(copy_, plain, sl.t.f32(), s[0], s[1], s[2] * s[3]);
        } else if (bytes > 0) {
            MICLE_CUDA_CHECK(cudaMemcpyAsync(sl.t.f32(), sl.pinned, bytes, cudaMemcpyHostToDevice, copy_));
        }
        MICLE_CUDA_CHECK(cudaEventRecord(sl.copied, copy_));
        sl.used = true;
        ++count_;
    }

    const tensor<cudnn>& next(context<cudnn>& ctx) {
        check(count_ > 0, "upload_queue: next() without a staged batch");
        slot& sl = slots_[static_cast<std::size_t>(head_)];
        MICLE_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream(), sl.copied, 0));
        head_ = (head_ + 1) % 2;
        --count_;
        return sl.t;
    }
    int staged() const noexcept { return count_; }

private:
    struct slot {
        void* pinned = nullptr;
        std::size_t pinned_bytes = 0;
        cudnn_detail::device_array<float> plain;
        tensor<cudnn> t;
        cudaEvent_t copied = nullptr, consumed = nullptr;
        bool used = false;
    };
    void init(context<cudnn>& ctx) {
        if (copy_) return;
        MICLE_CUDA_CHECK(cudaSetDevice(ctx.options().device));
        MICLE_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
        for (auto& s : slots_) {
            MICLE_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
            MICLE_CUDA_CHECK(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming));
        }
    }

    cudaStream_t copy_ = nullptr;
    std::array<slot, 2> slots_;
    int head_ = 0, count_ = 0;
};

}  // namespace micle
