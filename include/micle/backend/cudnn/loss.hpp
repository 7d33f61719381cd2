#pragma once
// The losses with the backend's kernels: softmax cross-entropy and sigmoid binary
// cross-entropy (plain and masked). Loss values are summed on the host in double from
// per-row (per-element) device values, in a fixed order.
#include <span>
#include <vector>

#include "micle/backend/cudnn/kernels.cuh"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::cudnn_detail {
/// Sum in double of the first n device floats of `a`, in index order (waits for the stream).
inline double host_sum(const device_array<float>& a, std::size_t n) {
    std::vector<float> v(n);
    a.download(v.data(), n);
    double s = 0;
    for (float x : v) s += x;
    return s;
}
}  // namespace micle::cudnn_detail

namespace micle::ops {

template <>
class softmax_cross_entropy<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    float forward(context_t& ctx, const tensor_t& logits, std::span<const int> labels) {
        checks::f32("softmax_cross_entropy", "logits", logits.dtype());
        checks::class_labels("softmax_cross_entropy", logits.shape(), labels);
        const auto N = logits.shape()[0], K = logits.shape()[1];
        prob_.ensure(ctx, logits.shape());
        labels_.upload(ctx.runtime_ptr(), labels.data(), labels.size());
        row_loss_.ensure(ctx.runtime_ptr(), static_cast<std::size_t>(N));
        cudnn_detail::kernels::softmax_xent_forward(ctx.stream(), logits.f32(), labels_.get(), prob_.f32(),
                                                    row_loss_.get(), N, K);
        shape_ = logits.shape();
        return static_cast<float>(cudnn_detail::host_sum(row_loss_, static_cast<std::size_t>(N)) / double(N));
    }

    void backward(context_t& ctx, tensor_t& dlogits) {
        check(shape_.rank() == 2, "softmax_cross_entropy: backward called before forward");
        dlogits.ensure(ctx, shape_);
        cudnn_detail::kernels::softmax_xent_backward(ctx.stream(), prob_.f32(), labels_.get(), dlogits.f32(), shape_[0],
                                                     shape_[1]);
    }

private:
    tensor_t prob_;
    cudnn_detail::device_array<int> labels_;
    cudnn_detail::device_array<float> row_loss_;
    shape shape_;
};

template <>
class sigmoid_bce<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets) { return run(ctx, logits, targets, nullptr); }
    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t& mask) {
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "mask", mask.shape());
        checks::f32("sigmoid_bce", "mask", mask.dtype());
        return run(ctx, logits, targets, &mask);
    }

    void backward(context_t& ctx, tensor_t& dlogits) {
        check(logits_.defined(), "sigmoid_bce: backward called before forward");
        dlogits.ensure(ctx, logits_.shape());
        cudnn_detail::kernels::bce_backward(ctx.stream(), logits_.f32(), targets_.f32(), masked_ ? mask_.f32() : nullptr,
                                            dlogits.f32(), logits_.numel(), kept_);
    }

private:
    float run(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t* mask) {
        checks::f32("sigmoid_bce", "logits", logits.dtype());
        checks::f32("sigmoid_bce", "targets", targets.dtype());
        checks::rows("sigmoid_bce", logits.shape());
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "targets", targets.shape());
        const auto host_targets = targets.to_host(ctx);
        checks::unit_interval("sigmoid_bce", "targets", host_targets);
        const auto n = logits.numel();
        masked_ = mask != nullptr;
        kept_ = masked_ ? checks::binary_mask("sigmoid_bce", mask->to_host(ctx)) : n;
        logits_.ensure(ctx, logits.shape());
        logits_.copy_from(ctx, logits);
        targets_.ensure(ctx, targets.shape());
        targets_.copy_from(ctx, targets);
        if (masked_) {
            mask_.ensure(ctx, mask->shape());
            mask_.copy_from(ctx, *mask);
        }
        loss_.ensure(ctx.runtime_ptr(), static_cast<std::size_t>(n));
        cudnn_detail::kernels::bce_forward(ctx.stream(), logits.f32(), targets.f32(), masked_ ? mask->f32() : nullptr, loss_.get(), n);
        return kept_ ? static_cast<float>(cudnn_detail::host_sum(loss_, static_cast<std::size_t>(n)) / double(kept_)) : 0.0f;
    }

    tensor_t logits_, targets_, mask_;
    cudnn_detail::device_array<float> loss_;
    bool masked_ = false;
    std::int64_t kept_ = 0;
};

}  // namespace micle::ops
