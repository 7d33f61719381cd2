#pragma once
// The losses on the oneDNN backend: softmax cross-entropy and sigmoid binary cross-entropy
// (plain and masked). oneDNN 2.6 has no loss primitive; these work on small [N, K]
// matrices in plain layout (onednn/rows.hpp) with Eigen, and with oneDNN's log-softmax
// primitive for the softmax.
#include <Eigen/Core>

#include <span>
#include <vector>

#include "micle/backend/onednn/rows.hpp"
#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class softmax_cross_entropy<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    float forward(context_t& ctx, const tensor_t& logits, std::span<const int> labels) {
        using namespace onednn_detail::rows;
        checks::f32("softmax_cross_entropy", "logits", logits.dtype());
        checks::class_labels("softmax_cross_entropy", logits.shape(), labels);
        const md plain = onednn_detail::plain_md(logits.shape());
        if (!(pd_ && plain == pd_.src_desc())) {
            pd_ = onednn_compat::log_softmax_pd(ctx.engine(), plain, 1);
            prim_ = dnnl::softmax_v2_forward(pd_);
            logp_ = dnnl::memory(pd_.dst_desc(), ctx.engine());
        }
        const auto& src = in_.get(ctx, logits.memory(), plain);
        prim_.execute(ctx.stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, logp_}});
        ctx.synchronize();
        labels_.assign(labels.begin(), labels.end());
        const auto N = logits.shape()[0], K = logits.shape()[1];
        const float* lp = static_cast<const float*>(logp_.get_data_handle());
        double loss = 0;
        for (std::int64_t n = 0; n < N; ++n) loss -= lp[n * K + labels_[static_cast<std::size_t>(n)]];
        return static_cast<float>(loss / double(N));
    }

    void backward(context_t& ctx, tensor_t& dlogits) {
        using namespace onednn_detail::rows;
        check(static_cast<bool>(pd_) && !labels_.empty(), "softmax_cross_entropy: backward called before forward");
        const auto dims = pd_.dst_desc().dims();
        const auto N = dims[0], K = dims[1];
        dlogits.ensure(ctx, onednn_detail::plain_md(shape{N, K}));
        map d(dlogits.data(), N, K);
        d = cmap(static_cast<const float*>(logp_.get_data_handle()), N, K).array().exp();
        for (std::int64_t n = 0; n < N; ++n) d(n, labels_[static_cast<std::size_t>(n)]) -= 1.0f;
        d *= 1.0f / static_cast<float>(N);
    }

private:
    dnnl::softmax_v2_forward::primitive_desc pd_;
    dnnl::softmax_v2_forward prim_;
    dnnl::memory logp_;
    onednn_detail::stage in_;
    std::vector<int> labels_;
};

template <>
class sigmoid_bce<onednn> {
public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets) { return run(ctx, logits, targets, nullptr); }
    float forward(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t& mask) {
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "mask", mask.shape());
        return run(ctx, logits, targets, &mask);
    }

    void backward(context_t& ctx, tensor_t& dlogits) {
        using namespace onednn_detail::rows;
        check(x_.size() > 0, "sigmoid_bce: backward called before forward");
        dlogits.ensure(ctx, onednn_detail::plain_md(shape{x_.rows(), x_.cols()}));
        const float inv = kept_ ? 1.0f / static_cast<float>(kept_) : 0.0f;
        auto d = map(dlogits.data(), x_.rows(), x_.cols()).array();
        d = ((1.0f + (-x_.array()).exp()).inverse() - t_.array()) * inv;
        if (m_.size() > 0) d *= m_.array();
    }

private:
    float run(context_t& ctx, const tensor_t& logits, const tensor_t& targets, const tensor_t* mask) {
        using namespace onednn_detail::rows;
        checks::f32("sigmoid_bce", "logits", logits.dtype());
        checks::rows("sigmoid_bce", logits.shape());
        checks::same_shape("sigmoid_bce", "logits", logits.shape(), "targets", targets.shape());
        const auto N = logits.shape()[0], K = logits.shape()[1];
        x_ = cmap(plain_rows(ctx, logits, x_in_), N, K);
        t_ = cmap(plain_rows(ctx, targets, t_in_), N, K);
        checks::unit_interval("sigmoid_bce", "targets", std::span<const float>(t_.data(), static_cast<std::size_t>(t_.size())));
        if (mask) {
            m_ = cmap(plain_rows(ctx, *mask, m_in_), N, K);
            kept_ = checks::binary_mask("sigmoid_bce", std::span<const float>(m_.data(), static_cast<std::size_t>(m_.size())));
        } else {
            m_.resize(0, 0);
            kept_ = N * K;
        }
        // max(x, 0) - x t + log(1 + exp(-|x|)), stable for large |x|.
        const auto x = x_.array().template cast<double>();
        const auto t = t_.array().template cast<double>();
        const auto l = x.max(0.0) - x * t + (-x.abs()).exp().log1p();
        const double sum = mask ? (l * m_.array().template cast<double>()).sum() : l.sum();
        return kept_ ? static_cast<float>(sum / double(kept_)) : 0.0f;
    }

    onednn_detail::rows::matrix x_, t_, m_;  // m_ empty: every entry
    onednn_detail::stage x_in_, t_in_, m_in_;
    std::int64_t kept_ = 0;
};

}  // namespace micle::ops
