#pragma once
// Elementwise kernels, layout changes and global average pooling (NHWC) of the GPU backend.
#include "micle/backend/cudnn/kernels/common.cuh"

namespace micle::cudnn_detail::kernels {

// ---------------------------------------------------------------- elementwise
MICLE_KERNEL fill_kernel(float* __restrict__ p, std::int64_t n, float v) {
    MICLE_GRID_STRIDE(i, n) p[i] = v;
}
MICLE_KERNEL fill_u16_kernel(std::uint16_t* __restrict__ p, std::int64_t n, std::uint16_t v) {
    MICLE_GRID_STRIDE(i, n) p[i] = v;
}
template <class T>
__global__ void relu_forward_kernel(const T* x, T* y, std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) y[i] = to_f(x[i]) > 0.0f ? x[i] : from_f<T>(0.0f);
}
/// dx = dy where the forward input (or output: the same sign) is positive.
template <class T>
__global__ void relu_backward_kernel(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx,
                                     std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) dx[i] = to_f(x[i]) > 0.0f ? dy[i] : from_f<T>(0.0f);
}
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* y, std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) y[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}
/// y = max(a + b, 0), rounded once.
template <class T>
__global__ void add_relu_kernel(const T* a, const T* b, T* y, std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) {
        const float s = to_f(a[i]) + to_f(b[i]);
        y[i] = from_f<T>(s > 0.0f ? s : 0.0f);
    }
}
/// Element type conversion (float <-> bfloat16, round to nearest even).
template <class From, class To>
__global__ void convert_kernel(const From* __restrict__ x, To* __restrict__ y, std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) y[i] = from_f<To>(to_f(x[i]));
}
/// y[r, c] += b[c] for a row-major [rows, cols] matrix.
template <class T>
__global__ void bias_rows_kernel(T* __restrict__ y, const float* __restrict__ b, std::int64_t rows, std::int64_t cols) {
    MICLE_GRID_STRIDE(i, rows * cols) y[i] = from_f<T>(to_f(y[i]) + b[i % cols]);
}
/// out[c] = sum over r of x[r, c]; one thread per column, rows in order.
template <class T>
__global__ void column_sums_kernel(const T* __restrict__ x, float* __restrict__ out, std::int64_t rows,
                                   std::int64_t cols) {
    MICLE_GRID_STRIDE(c, cols) {
        double s = 0;
        for (std::int64_t r = 0; r < rows; ++r) s += to_f(x[r * cols + c]);
        out[c] = static_cast<float>(s);
    }
}

inline void fill(cudaStream_t s, float* p, std::int64_t n, float v) {
    fill_kernel<0><<<blocks_for(n), threads, 0, s>>>(p, n, v);
    check_launch("fill_kernel");
}
inline void fill_bf16(cudaStream_t s, std::uint16_t* p, std::int64_t n, std::uint16_t v) {
    fill_u16_kernel<0><<<blocks_for(n), threads, 0, s>>>(p, n, v);
    check_launch("fill_u16_kernel");
}
template <class T>
void relu_forward(cudaStream_t s, const T* x, T* y, std::int64_t n) {
    relu_forward_kernel<T><<<blocks_for(n), threads, 0, s>>>(x, y, n);
    check_launch("relu_forward_kernel");
}
template <class T>
void relu_backward(cudaStream_t s, const T* x, const T* dy, T* dx, std::int64_t n) {
    relu_backward_kernel<T><<<blocks_for(n), threads, 0, s>>>(x, dy, dx, n);
    check_launch("relu_backward_kernel");
}
template <class T>
void add(cudaStream_t s, const T* a, const T* b, T* y, std::int64_t n) {
    add_kernel<T><<<blocks_for(n), threads, 0, s>>>(a, b, y, n);
    check_launch("add_kernel");
}
template <class T>
void add_relu(cudaStream_t s, const T* a, const T* b, T* y, std::int64_t n) {
    add_relu_kernel<T><<<blocks_for(n), threads, 0, s>>>(a, b, y, n);
    check_launch("add_relu_kernel");
}
template <class From, class To>
void convert(cudaStream_t s, const From* x, To* y, std::int64_t n) {
    convert_kernel<From, To><<<blocks_for(n), threads, 0, s>>>(x, y, n);
    check_launch("convert_kernel");
}
/// y [rows, cols] += b [cols] (also the bias of NHWC activations: rows = N*H*W, cols = C).
template <class T>
void bias_rows(cudaStream_t s, T* y, const float* b, std::int64_t rows, std::int64_t cols) {
    bias_rows_kernel<T><<<blocks_for(rows * cols), threads, 0, s>>>(y, b, rows, cols);
    check_launch("bias_rows_kernel");
}
/// out [cols] = column sums of x [rows, cols] (the bias gradient).
template <class T>
void column_sums(cudaStream_t s, const T* x, float* out, std::int64_t rows, std::int64_t cols) {
    column_sums_kernel<T><<<blocks_for(cols), threads, 0, s>>>(x, out, rows, cols);
    check_launch("column_sums_kernel");
}

// ---------------------------------------------------------------- layout
/// dst [N, HW, C] (NHWC) from src [N, C, HW] (NCHW); one thread per destination element,
/// so writes are coalesced.
MICLE_KERNEL nchw_to_nhwc_kernel(const float* __restrict__ src, float* __restrict__ dst, std::int64_t N,
                                 std::int64_t C, std::int64_t HW) {
    MICLE_GRID_STRIDE(i, N * C * HW) {
        const std::int64_t c = i % C, p = (i / C) % HW, n = i / (C * HW);
        dst[i] = src[(n * C + c) * HW + p];
    }
}
inline void nchw_to_nhwc(cudaStream_t s, const float* src, float* dst, std::int64_t N, std::int64_t C,
                         std::int64_t HW) {
    nchw_to_nhwc_kernel<0><<<blocks_for(N * C * HW), threads, 0, s>>>(src, dst, N, C, HW);
    check_launch("nchw_to_nhwc_kernel");
}

// ---------------------------------------------------------------- global average pooling (NHWC)
/// y[n, c] = mean over the S = H*W positions of x[n, p, c]; one thread per (n, c), so a warp
/// reads 32 neighbouring channels (coalesced).
/// The output (and its gradient) is float whatever the activations' type: the features
/// feed the head in fp32.
template <class T>
__global__ void gap_forward_kernel(const T* __restrict__ x, float* __restrict__ y, std::int64_t N, std::int64_t S,
                                   std::int64_t C) {
    MICLE_GRID_STRIDE(i, N * C) {
        const std::int64_t n = i / C, c = i % C;
        const T* p = x + n * S * C + c;
        float s = 0;
        for (std::int64_t k = 0; k < S; ++k) s += to_f(p[k * C]);
        y[i] = s / static_cast<float>(S);
    }
}
template <class T>
__global__ void gap_backward_kernel(const float* __restrict__ dy, T* __restrict__ dx, std::int64_t N, std::int64_t S,
                                    std::int64_t C) {
    const float inv = 1.0f / static_cast<float>(S);
    MICLE_GRID_STRIDE(i, N * S * C) {
        const std::int64_t c = i % C, n = i / (S * C);
        dx[i] = from_f<T>(dy[n * C + c] * inv);
    }
}
template <class T>
void gap_forward(cudaStream_t s, const T* x, float* y, std::int64_t N, std::int64_t S, std::int64_t C) {
    gap_forward_kernel<T><<<blocks_for(N * C), threads, 0, s>>>(x, y, N, S, C);
    check_launch("gap_forward_kernel");
}
template <class T>
void gap_backward(cudaStream_t s, const float* dy, T* dx, std::int64_t N, std::int64_t S, std::int64_t C) {
    gap_backward_kernel<T><<<blocks_for(N * S * C), threads, 0, s>>>(dy, dx, N, S, C);
    check_launch("gap_backward_kernel");
}

}  // namespace micle::cudnn_detail::kernels
