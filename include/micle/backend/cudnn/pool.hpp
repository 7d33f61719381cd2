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
        const shape ys = checks::pool2d(p_, x.shape());
        auto& e = entry(x.shape(), x.dtype());
        y.ensure(ctx, ys, x.dtype());
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnPoolingForward(ctx.dnn(), e.pool, &one, e.x, x.raw(), &zero, e.y, y.raw()));
        x_.ensure(ctx, x.shape(), x.dtype());
        x_.copy_from(ctx, x);
        y_.ensure(ctx, ys, x.dtype());
        y_.copy_from(ctx, y);
        x_shape_ = x.shape();
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "pool2d: backward called before forward");
        checks::same_shape("pool2d backward", "dy", dy.shape(), "forward output", checks::pool2d(p_, x_shape_));
        checks::same_dtype("pool2d backward", "dy", dy.dtype(), "the input", x_.dtype());
        auto& e = entry(x_shape_, x_.dtype());
        dx.ensure(ctx, x_shape_, x_.dtype());
        const float one = 1.0f, zero = 0.0f;
        MICLE_CUDA_CHECK(cudnnPoolingBackward(ctx.dnn(), e.pool, &one, e.y, y_.raw(), e.y, dy.raw(), e.x, x_.raw(), &zero,
                                              e.x, dx.raw()));
    }

private:
    struct entry_t {
        entry_t(const pool2d_params& p, const shape& xs, dtype t)
            : x(xs, cudnn_detail::data_type(t)), y(checks::pool2d(p, xs), cudnn_detail::data_type(t)),
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
    entry_t& entry(const shape& xs, dtype t) {
        return *cache_.get(std::pair{xs, t}, [&] { return std::make_unique<entry_t>(p_, xs, t); });
    }

    pool2d_params p_;
    shape x_shape_;
    tensor_t x_, y_;
    micle::detail::shape_cache<std::pair<shape, dtype>, std::unique_ptr<entry_t>> cache_;
};

template <>
class global_avg_pool<cudnn> {
public:
    using tensor_t = tensor<cudnn>;
    using context_t = context<cudnn>;

    /// y is f32 whatever the input's type (the features feed the head in fp32); the
    /// gradient goes back in the input's type.
    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        expect_rank(x.shape(), 4, "global_avg_pool", "input");
        x_shape_ = x.shape();
        x_dtype_ = x.dtype();
        const auto N = x.shape()[0], C = x.shape()[1], S = x.shape()[2] * x.shape()[3];
        y.ensure(ctx, shape{N, C});
        cudnn_detail::with_element_type(x.dtype(), [&](auto t) {
            using T = decltype(t);
            cudnn_detail::kernels::gap_forward(ctx.stream(), x.data<T>(), y.f32(), N, S, C);
        });
    }
    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(x_shape_.rank() == 4, "global_avg_pool: backward called before forward");
        checks::same_shape("global_avg_pool backward", "dy", dy.shape(), "forward output",
                           shape{x_shape_[0], x_shape_[1]});
        checks::f32("global_avg_pool", "dy", dy.dtype());
        const auto N = x_shape_[0], C = x_shape_[1], S = x_shape_[2] * x_shape_[3];
        dx.ensure(ctx, x_shape_, x_dtype_);
        cudnn_detail::with_element_type(x_dtype_, [&](auto t) {
            using T = decltype(t);
            cudnn_detail::kernels::gap_backward(ctx.stream(), dy.f32(), dx.data<T>(), N, S, C);
        });
    }

private:
    shape x_shape_;
    dtype x_dtype_ = dtype::f32;
};

}  // namespace micle::ops

MICLE_CUDNN_LEGACY_END
