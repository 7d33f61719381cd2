#pragma once
// GPU backend storage and execution context.
//
// Layout: a tensor's logical shape is NCHW (as on every backend); rank-4 tensors are stored
// NHWC on the device (channels innermost, the layout cuDNN's tensor-core kernels want),
// which for weights [O,C,kh,kw] is cuDNN's KRSC filter layout. Tensors of any other rank
// are stored row-major. to_host/from_host convert to and from plain row-major NCHW.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include <cuda_bf16.h>

#include "micle/backend/cudnn/kernels.cuh"
#include "micle/backend/cudnn/runtime.hpp"
#include "micle/core/backend.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/shape.hpp"

namespace micle {

/// Settings of a GPU context: which device, and what the kernels may trade for speed.
struct cudnn_options {
    int device = 0;
    /// fp32 convolutions and matrix products may use TF32 tensor cores (10-bit mantissa
    /// inputs, fp32 accumulation), as PyTorch's cuDNN convolutions do by default.
    bool allow_tf32 = true;
    /// Only deterministic cuDNN algorithms: the same inputs give bitwise the same results
    /// run after run (a resumed run continues exactly). Off: the fastest algorithm.
    bool deterministic = true;
    /// Choose each convolution's algorithms by running every candidate once on the first
    /// call for a shape (cudnnFind*, as PyTorch's cudnn.benchmark = True) instead of by
    /// cuDNN's heuristics: slower first steps, and the choice may differ from run to run.
    bool find_algorithms = false;
    /// Largest cuDNN workspace an algorithm may ask for.
    std::size_t workspace_limit = std::size_t(1) << 30;
    /// Mixed precision: the backbone's activations and their gradients are bf16
    /// (convolutions, batch norm, pooling, ReLU and residual adds read and write bf16 and
    /// accumulate in fp32); weights stay fp32 master copies (convolutions cast them per
    /// call), weight gradients, the head, the loss and the optimizer stay fp32.
    bool bf16 = false;
};

/// The options a default-constructed context<cudnn> takes (as PyTorch's global
/// torch.backends flags): set them once at start-up, before contexts are made.
inline cudnn_options& cudnn_defaults() {
    static cudnn_options o;
    return o;
}

/// One device, one stream, cuDNN and cuBLAS handles bound to that stream, a reusable
/// workspace, and the caching allocator of every tensor made on it. Ops enqueue work on
/// the stream and return; synchronize() waits for it. Movable, not copyable.
template <>
class context<cudnn> {
public:
    context() : context(cudnn_defaults()) {}
    explicit context(const cudnn_options& o) : s_(std::make_unique<state>(o)) {}

    const cudnn_options& options() const noexcept { return s_->opts; }
    cudaStream_t stream() const noexcept { return s_->rt->stream(); }
    cudnnHandle_t dnn() const noexcept { return s_->dnn; }
    cublasHandle_t blas() const noexcept { return s_->blas; }
    cudnn_detail::device_runtime& runtime() const noexcept { return *s_->rt; }
    const std::shared_ptr<cudnn_detail::device_runtime>& runtime_ptr() const noexcept { return s_->rt; }
    void synchronize() { s_->rt->synchronize(); }

    /// Scratch memory of at least `bytes` for the op about to be enqueued (shared by all
    /// ops of this context: they run one after another on its stream).
    void* workspace(std::size_t bytes) {
        if (bytes > s_->workspace_bytes) {
            s_->rt->release(s_->workspace);
            s_->workspace = s_->rt->allocate(bytes);
            s_->workspace_bytes = bytes;
        }
        return s_->workspace;
    }

    /// "cudnn on <GPU name> (device 0, sm_90, 79 GiB), fp32 with TF32, deterministic
    /// algorithms", for logs.
    std::string description() const {
        cudaDeviceProp p{};
        MICLE_CUDA_CHECK(cudaGetDeviceProperties(&p, s_->opts.device));
        return detail::cat("cudnn on ", p.name, " (device ", s_->opts.device, ", sm_", p.major, p.minor, ", ",
                           p.totalGlobalMem >> 30, " GiB), ",
                           s_->opts.bf16 ? "bf16 mixed precision" : s_->opts.allow_tf32 ? "fp32 with TF32" : "strict fp32",
                           s_->opts.deterministic ? ", deterministic algorithms" : "");
    }

    /// cuBLAS compute type for fp32 products under this context's settings.
    cublasComputeType_t gemm_compute() const noexcept {
        return s_->opts.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    }

private:
    struct state {
        explicit state(const cudnn_options& o)
            : opts(o), rt(std::make_shared<cudnn_detail::device_runtime>(o.device)) {
            MICLE_CUDA_CHECK(cudnnCreate(&dnn));
            MICLE_CUDA_CHECK(cudnnSetStream(dnn, rt->stream()));
            MICLE_CUDA_CHECK(cublasCreate(&blas));
            MICLE_CUDA_CHECK(cublasSetStream(blas, rt->stream()));
            MICLE_CUDA_CHECK(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST));
        }
        state(const state&) = delete;
        state& operator=(const state&) = delete;
        ~state() {
            (void)cudaStreamSynchronize(rt->stream());
            rt->release(workspace);
            (void)cublasDestroy(blas);
            (void)cudnnDestroy(dnn);
        }
        cudnn_options opts;
        std::shared_ptr<cudnn_detail::device_runtime> rt;
        cudnnHandle_t dnn = nullptr;
        cublasHandle_t blas = nullptr;
        void* workspace = nullptr;
        std::size_t workspace_bytes = 0;
    };
    std::unique_ptr<state> s_;
};

namespace cudnn_detail {

/// The bf16 bit pattern of `v`, rounded as every backend rounds (detail::round_to_bf16).
inline std::uint16_t to_bf16_bits(float v) noexcept {
    const auto bits = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(detail::round_to_bf16(v)) >> 16);
    return v != v ? static_cast<std::uint16_t>(bits | 0x40u) : bits;  // a NaN stays a NaN once truncated
}
inline float from_bf16_bits(std::uint16_t b) noexcept { return std::bit_cast<float>(std::uint32_t(b) << 16); }

/// Index in the stored (device) order of logical row-major element `i` of shape `s`.
/// Rank 4 is stored NHWC; everything else row-major.
struct layout_map {
    explicit layout_map(const shape& s) : nhwc(s.rank() == 4) {
        if (nhwc) c = s[1], hw = s[2] * s[3];
    }
    std::int64_t stored(std::int64_t i) const noexcept {
        if (!nhwc) return i;
        const std::int64_t n = i / (c * hw), r = i % (c * hw), ch = r / hw, p = r % hw;
        return (n * hw + p) * c + ch;
    }
    bool nhwc = false;
    std::int64_t c = 1, hw = 1;
};

}  // namespace cudnn_detail

template <>
class tensor<cudnn> {
public:
    tensor() = default;
    tensor(tensor&& o) noexcept { swap(o); }
    tensor& operator=(tensor&& o) noexcept {
        if (this != &o) {
            tensor tmp(std::move(o));
            swap(tmp);
        }
        return *this;
    }
    tensor(const tensor&) = delete;
    tensor& operator=(const tensor&) = delete;
    ~tensor() {
        if (rt_) rt_->release(ptr_);
    }

    /// Uninitialised device tensor.
    static tensor empty(context<cudnn>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        check(s.rank() > 0, "tensor::empty: a tensor needs at least one dimension");
        return make(ctx.runtime_ptr(), s, t);
    }
    static tensor zeros(context<cudnn>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        auto r = empty(ctx, s, t);
        r.fill(ctx, 0.0f);
        return r;
    }
    /// A zero tensor of the shape and dtype of `like`, on the same device and stream.
    static tensor zeros_like(const tensor& like) {
        check(like.defined(), "tensor::zeros_like: undefined tensor");
        auto r = make(like.rt_, like.shape_, like.dtype_);
        if (r.bytes() > 0) MICLE_CUDA_CHECK(cudaMemsetAsync(r.ptr_, 0, r.bytes(), r.rt_->stream()));
        return r;
    }
    /// Copies plain row-major (NCHW) host floats into a new device tensor.
    static tensor from_host(context<cudnn>& ctx, const micle::shape& s, std::span<const float> values,
                            micle::dtype t = dtype::f32) {
        check(static_cast<std::int64_t>(values.size()) == s.numel(), "tensor::from_host: ", values.size(),
              " values for shape ", s, " (", s.numel(), " elements)");
        auto r = empty(ctx, s, t);
        r.upload(values);
        return r;
    }
    /// Plain row-major (NCHW) f32 host copy; waits for the stream.
    std::vector<float> to_host(context<cudnn>&) const { return download(); }
    /// The same, on the stream of the context that made this tensor.
    std::vector<float> download() const {
        check(defined(), "tensor::to_host: undefined tensor");
        std::vector<float> out(static_cast<std::size_t>(numel()));
        if (out.empty()) return out;
        void* host = rt_->pinned(bytes());
        MICLE_CUDA_CHECK(cudaMemcpyAsync(host, ptr_, bytes(), cudaMemcpyDeviceToHost, rt_->stream()));
        rt_->synchronize();
        const cudnn_detail::layout_map map(shape_);
        if (dtype_ == dtype::f32) {
            const auto* src = static_cast<const float*>(host);
            for (std::size_t i = 0; i < out.size(); ++i) out[i] = src[map.stored(static_cast<std::int64_t>(i))];
        } else {
            const auto* src = static_cast<const std::uint16_t*>(host);
            for (std::size_t i = 0; i < out.size(); ++i)
                out[i] = cudnn_detail::from_bf16_bits(src[map.stored(static_cast<std::int64_t>(i))]);
        }
        return out;
    }
    /// Overwrites the values from plain row-major (NCHW) host floats.
    void assign(context<cudnn>&, std::span<const float> values) { upload(values); }
    /// The same, on the stream of the context that made this tensor; returns when the
    /// host values have been copied out (the span may go away).
    void upload(std::span<const float> values) {
        check(defined() && static_cast<std::int64_t>(values.size()) == numel(), "tensor::assign: ", values.size(),
              " values for shape ", shape_);
        if (values.empty()) return;
        void* host = rt_->pinned(bytes());
        if (dtype_ == dtype::f32 && shape_.rank() == 4) {  // NCHW as is; NHWC on the device
            std::memcpy(host, values.data(), bytes());
            void* plain = rt_->allocate(bytes());
            MICLE_CUDA_CHECK(cudaMemcpyAsync(plain, host, bytes(), cudaMemcpyHostToDevice, rt_->stream()));
            cudnn_detail::kernels::nchw_to_nhwc(rt_->stream(), static_cast<const float*>(plain), f32(), shape_[0],
                                                shape_[1], shape_[2] * shape_[3]);
            rt_->release(plain);  // stream order: reused only by work enqueued after this
            rt_->synchronize();   // the pinned buffer is reused by the next copy
            return;
        }
        const cudnn_detail::layout_map map(shape_);
        if (dtype_ == dtype::f32) {
            auto* dst = static_cast<float*>(host);
            for (std::size_t i = 0; i < values.size(); ++i) dst[map.stored(static_cast<std::int64_t>(i))] = values[i];
        } else {
            auto* dst = static_cast<std::uint16_t*>(host);
            for (std::size_t i = 0; i < values.size(); ++i)
                dst[map.stored(static_cast<std::int64_t>(i))] = cudnn_detail::to_bf16_bits(values[i]);
        }
        MICLE_CUDA_CHECK(cudaMemcpyAsync(ptr_, host, bytes(), cudaMemcpyHostToDevice, rt_->stream()));
        rt_->synchronize();  // the pinned buffer is reused by the next copy
    }
    tensor clone(context<cudnn>& ctx) const {
        check(defined(), "tensor::clone: undefined tensor");
        auto r = empty(ctx, shape_, dtype_);
        r.copy_from(ctx, *this);
        return r;
    }
    /// Copies the values of `src` (same shape and dtype) on the context's stream.
    void copy_from(context<cudnn>& ctx, const tensor& src) {
        check(src.shape_ == shape_ && src.dtype_ == dtype_, "tensor::copy_from: ", src.shape_, " ", src.dtype_,
              " into ", shape_, " ", dtype_);
        if (bytes() > 0)
            MICLE_CUDA_CHECK(cudaMemcpyAsync(ptr_, src.ptr_, bytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
    }
    void fill(context<cudnn>& ctx, float v) {
        check(defined(), "tensor::fill: undefined tensor");
        if (bytes() == 0) return;
        if (v == 0.0f) {
            MICLE_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, bytes(), ctx.stream()));
        } else if (dtype_ == dtype::f32) {
            cudnn_detail::kernels::fill(ctx.stream(), f32(), numel(), v);
        } else {
            cudnn_detail::kernels::fill_bf16(ctx.stream(), static_cast<std::uint16_t*>(ptr_), numel(),
                                             cudnn_detail::to_bf16_bits(v));
        }
    }

    /// Makes this an f32 (or `t`) tensor of shape `s`, keeping the storage when it is
    /// large enough. The values are unspecified after a change of shape.
    void ensure(context<cudnn>& ctx, const micle::shape& s, micle::dtype t = dtype::f32) {
        if (defined() && shape_ == s && dtype_ == t) return;
        const std::size_t need = static_cast<std::size_t>(s.numel()) * size_of(t);
        if (rt_ == ctx.runtime_ptr() && need <= capacity_) {
            shape_ = s;
            dtype_ = t;
            return;
        }
        *this = make(ctx.runtime_ptr(), s, t);
    }

    const micle::shape& shape() const noexcept { return shape_; }
    micle::dtype dtype() const noexcept { return dtype_; }
    std::int64_t numel() const noexcept { return shape_.numel(); }
    bool defined() const noexcept { return shape_.rank() > 0; }
    std::size_t bytes() const noexcept { return static_cast<std::size_t>(numel()) * size_of(dtype_); }

    /// Typed device pointer: T is float for f32 tensors, __nv_bfloat16 for bf16 ones.
    template <class T>
    T* data() {
        constexpr micle::dtype want = std::is_same_v<T, __nv_bfloat16> ? dtype::bf16 : dtype::f32;
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, __nv_bfloat16>, "tensor<cudnn>: float or bf16");
        check(dtype_ == want, "tensor: a ", want, " device pointer of a ", dtype_, " tensor ", shape_);
        return static_cast<T*>(ptr_);
    }
    template <class T>
    const T* data() const {
        return const_cast<tensor*>(this)->data<T>();
    }

    /// Device pointer of an f32 tensor (NHWC for rank 4, row-major otherwise).
    float* f32() {
        check(dtype_ == dtype::f32, "tensor: an f32 device pointer of a ", dtype_, " tensor ", shape_);
        return static_cast<float*>(ptr_);
    }
    const float* f32() const { return const_cast<tensor*>(this)->f32(); }
    void* raw() noexcept { return ptr_; }
    const void* raw() const noexcept { return ptr_; }

private:
    static tensor make(const std::shared_ptr<cudnn_detail::device_runtime>& rt, const micle::shape& s,
                       micle::dtype t) {
        tensor r;
        r.rt_ = rt;
        r.shape_ = s;
        r.dtype_ = t;
        r.capacity_ = static_cast<std::size_t>(s.numel()) * size_of(t);
        r.ptr_ = rt->allocate(r.capacity_);
        return r;
    }
    void swap(tensor& o) noexcept {
        std::swap(rt_, o.rt_);
        std::swap(ptr_, o.ptr_);
        std::swap(capacity_, o.capacity_);
        std::swap(shape_, o.shape_);
        std::swap(dtype_, o.dtype_);
    }

    std::shared_ptr<cudnn_detail::device_runtime> rt_;
    void* ptr_ = nullptr;
    std::size_t capacity_ = 0;
    micle::shape shape_;
    micle::dtype dtype_ = dtype::f32;
};

namespace cudnn_detail {
/// Calls f(T{}) with T the element type of `t` (float or __nv_bfloat16).
template <class F>
decltype(auto) with_element_type(dtype t, F&& f) {
    if (t == dtype::bf16) return f(__nv_bfloat16{});
    return f(float{});
}
}  // namespace cudnn_detail

}  // namespace micle
