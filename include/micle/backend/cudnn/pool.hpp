#pragma once
// Pooling: max and average pooling on cuDNN (NHWC); global average pooling with the
// backend's own kernels (one thread per (sample, channel), coalesced over channels).
#include <memory>

#include "micle/backend/cudnn/descriptors.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/shape_cache.hpp"

MICLE_CUDNN_LEGACY_BEGIN

namespace micle::ops {

/// cuDNN's pooling backward reads the forward input and output, so forward keeps device
/// copies of both (the op contract does not keep the caller's tensors alive).
template <>
class pool2d<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    explicit pool2d(pool2d_params p) : p_(p) {}
    const pool2d_params& params() const noexcept { return p_; }

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        checks::f32("pool2d", "input", x.dtype());
        const shape ys = checks::pool2d(p_, x.shape());
        auto& e = entry(x.shape());
        y.ensure(ctx, ys);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnPoolingForward(ctx.dnn(), e.pool, &one, e.x, x.f32(), &zero, e.y, y.f32()));
        x_.ensure(ctx, x.shape());
        x_.copy_from(ctx, x);
        y_.ensure(ctx, ys);
        y_.copy_from(ctx, y);
        x_shape_ = x.shape();
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "pool2d: backward called before forward");
        checks::same_shape("pool2d backward", "dy", dy.shape(), "forward output", checks::pool2d(p_, x_shape_));
        checks::f32("pool2d", "dy", dy.dtype());
        auto& e = entry(x_shape_);
        dx.ensure(ctx, x_shape_);
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnPoolingBackward(ctx.dnn(), e.pool, &one, e.y, y_.f32(), e.y, dy.f32(), e.x, x_.f32(), &zero,
                                              e.x, dx.f32()));
    }

private:
    struct entry_t {
        entry_t(const pool2d_params& p, const shape& xs)
            : x(xs), y(checks::pool2d(p, xs)),
              pool(mode(p.kind), p.kernel_h, p.kernel_w, p.pad_h, p.pad_w, p.stride_h, p.stride_w) {}
        static cudnnPoolingMode_t mode(pool_kind k) {
            switch (k) {
                case pool_kind::max: return CUDNN_POOLING_MAX_DETERMINISTIC;
                case pool_kind::avg_include_pad: return CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
                default: return CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
            }
        }
        cudnn_detail::tensor_desc x, y;
        cudnn_detail::pooling_desc pool;
    };
    entry_t& entry(const shape& xs) {
        return *cache_.get(xs, [&] { return std::make_unique<entry_t>(p_, xs); });
    }

    pool2d_params p_;
    shape x_shape_;
    tensor_t x_, y_;
    micle::detail::shape_cache<shape, std::unique_ptr<entry_t>> cache_;
};

template <>
class global_avg_pool<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        checks::f32("global_avg_pool", "input", x.dtype());
        expect_rank(x.shape(), 4, "global_avg_pool", "input");
        x_shape_ = x.shape();
        const auto N = x.shape()[0], C = x.shape()[1], S = x.shape()[2] * x.shape()[3];
        y.ensure(ctx, shape{N, C});
        cudnn_detail::kernels::gap_forward(ctx.stream(), x.f32(), y.f32(), N, S, C);
    }
    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "global_avg_pool: backward called before forward");
        checks::same_shape("global_avg_pool backward", "dy", dy.shape(), "forward output",
                           shape{x_shape_[0], x_shape_[1]});
        checks::f32("global_avg_pool", "dy", dy.dtype());
        const auto N = x_shape_[0], C = x_shape_[1], S = x_shape_[2] * x_shape_[3];
        dx.ensure(ctx, x_shape_);
        cudnn_detail::kernels::gap_backward(ctx.stream(), dy.f32(), dx.f32(), N, S, C);
    }

private:
    shape x_shape_;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
