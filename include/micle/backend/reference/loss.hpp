#pragma once
// The losses of the reference backend: softmax cross-entropy and sigmoid binary
// cross-entropy (plain and masked).
#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class softmax_cross_entropy<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    float forward(context_t&, const tensor_t& logits, std::span<const int> labels) {
        checks::f32("softmax_cross_entropy", "logits", logits.dtype());
        checks::class_labels("softmax_cross_entropy", logits.shape(), labels);
        const auto N = logits.shape()[0], K = logits.shape()[1];
        prob_.assign(static_cast<std::size_t>(N * K), 0.0);
        labels_.assign(labels.begin(), labels.end());
        double loss = 0;
        for (std::int64_t n = 0; n < N; ++n) {
            const float* row = logits.data() + n * K;
            const double mx = *std::max_element(row, row + K);
            double s = 0;
            for (std::int64_t k = 0; k < K; ++k) s += std::exp(row[k] - mx);
            const double lse = mx + std::log(s);
            for (std::int64_t k = 0; k < K; ++k) prob_[static_cast<std::size_t>(n * K + k)] = std::exp(row[k] - lse);
            loss -= row[labels[static_cast<std::size_t>(n)]] - lse;
        }
        shape_ = logits.shape();
        return static_cast<float>(loss / double(N));
    }

    void backward(context_t&, tensor_t& dlogits) {
        check(shape_.rank() == 2, "softmax_cross_entropy: backward called before forward");
        const auto N = shape_[0], K = shape_[1];
        dlogits.ensure(shape_);
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t k = 0; k < K; ++k) {
                const double t = k == labels_[static_cast<std::size_t>(n)] ? 1.0 : 0.0;
                dlogits.data()[n * K + k] = static_cast<float>((prob_[static_cast<std::size_t>(n * K + k)] - t) / double(N));
            }
    }

private:
    std::vector<double> prob_;
    std::vector<int> labels_;
    shape shape_;
};

template <>
class sigmoid_bce<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets) { return run(ctx, logits, targets, nullptr); }
    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t& mask) {
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "mask", mask.shape());
        return run(ctx, logits, targets, &mask);
    }

    void backward(context_t&, tensor_t& dlogits) {
        check(logits_.defined(), "sigmoid_bce: backward called before forward");
        dlogits.ensure(logits_.shape());
        const double inv = kept_ ? 1.0 / double(kept_) : 0.0;
        for (std::int64_t i = 0; i < logits_.numel(); ++i) {
            const double s = 1.0 / (1.0 + std::exp(-double(logits_.data()[i])));
            const double w = mask_.empty() ? 1.0 : double(mask_[std::size_t(i)]);
            dlogits.data()[i] = static_cast<float>(w * (s - targets_.data()[i]) * inv);
        }
    }

private:
    float run(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t* mask) {
        checks::f32("sigmoid_bce", "logits", logits.dtype());
        checks::rows("sigmoid_bce", logits.shape());
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "targets", targets.shape());
        checks::unit_interval("sigmoid_bce", "targets", targets.values());
        mask_.clear();
        if (mask) mask_.assign(mask->values().begin(), mask->values().end());
        kept_ = mask ? checks::binary_mask("sigmoid_bce", mask_) : logits.numel();
        double loss = 0;
        for (std::int64_t i = 0; i < logits.numel(); ++i) {
            if (mask && mask_[std::size_t(i)] == 0.0f) continue;
            const double x = logits.data()[i], t = targets.data()[i];
            loss += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
        }
        logits_ = logits.clone(ctx);
        targets_ = targets.clone(ctx);
        return kept_ ? static_cast<float>(loss / double(kept_)) : 0.0f;
    }

    tensor_t logits_, targets_;
    std::vector<float> mask_;  // empty: every entry
    std::int64_t kept_ = 0;
};

}  // namespace micle::ops
