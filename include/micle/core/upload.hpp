#pragma once
// Handing batches from host memory to a backend one step ahead.
//
//   upload_queue<B> q;
//   q.stage(ctx, dims, pixels_of_batch_0);
//   for each step k:
//       const tensor<B>& x = q.next(ctx);           // batch k, ready for ops on ctx
//       q.stage(ctx, dims, pixels_of_batch_k_plus_1); // copied while step k computes
//       learner.step(x, ...);
//
// On a device backend the copy of batch k+1 runs on a second stream, overlapped with
// step k; a host backend simply copies at stage(). The tensor next() returns stays valid
// until stage() has been called twice more (two slots). This generic version serves
// backends whose tensors live in host memory; backend/<name>/ may specialise it.
#include <array>
#include <span>

#include "micle/core/backend.hpp"
#include "micle/core/error.hpp"
#include "micle/core/shape.hpp"

namespace micle {

template <class B>
class upload_queue {
public:
    /// Copies plain row-major (NCHW) host values into the next free slot.
    void stage(context<B>& ctx, const shape& s, std::span<const float> values) {
        check(count_ < 2, "upload_queue: two batches are staged and none was taken");
        slots_[(head_ + count_) % 2] = tensor<B>::from_host(ctx, s, values);
        ++count_;
    }
    /// The oldest staged batch.
    const tensor<B>& next(context<B>&) {
        check(count_ > 0, "upload_queue: next() without a staged batch");
        const auto& t = slots_[head_];
        head_ = (head_ + 1) % 2;
        --count_;
        return t;
    }
    int staged() const noexcept { return count_; }

private:
    std::array<tensor<B>, 2> slots_;
    int head_ = 0, count_ = 0;
};

}  // namespace micle
