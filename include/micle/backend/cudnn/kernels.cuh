#pragma once
// The GPU backend's own CUDA kernels: elementwise ops, row-wise losses, NT-Xent's masked
// softmax, global average pooling, and the fused optimizer updates. cuDNN and cuBLAS do
// the convolutions, batch norm, pooling and matrix products; these fill the gaps.
//
// Every kernel has a host launcher taking the stream first. Reductions accumulate in a
// fixed order (no atomics), so results are bitwise reproducible run to run.
#if !defined(__CUDACC__)
#error "micle/backend/cudnn/kernels.cuh holds CUDA kernels: compile this translation unit as CUDA (nvcc)"
#endif
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "micle/backend/cudnn/runtime.hpp"

namespace micle::cudnn_detail::kernels {

constexpr int threads = 256;

// Kernels are templates (on a dummy int) so that they have vague linkage like inline
// functions: any number of CUDA translation units of one program may include this header.
#define MICLE_KERNEL template <int = 0> __global__ void

inline unsigned blocks_for(std::int64_t n) {
    return static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>((n + threads - 1) / threads, 8192)));
}
inline void check_launch(const char* kernel) {
    const cudaError_t s = cudaGetLastError();
    if (s != cudaSuccess) fail("CUDA", kernel, detail::cat(cudaGetErrorName(s), ": ", cudaGetErrorString(s)), __FILE__, __LINE__);
}

#define MICLE_GRID_STRIDE(i, n)                                                                              \
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);         \
         i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)

// Element types of activations: float, or __nv_bfloat16 in mixed precision (computed in
// float either way).
__device__ inline float to_f(float v) { return v; }
__device__ inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T>
__device__ T from_f(float v);
template <>
__device__ inline float from_f<float>(float v) {
    return v;
}
template <>
__device__ inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

/// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); every thread
/// gets the result. `scratch` holds 32 values.
template <class T>
__device__ T block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += scratch[w];
    return total;
}
template <class T>
__device__ T block_max(T v, T* scratch) {
    for (int o = 16; o > 0; o /= 2) v = max(v, __shfl_down_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T best = scratch[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) best = max(best, scratch[w]);
    return best;
}

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

// ---------------------------------------------------------------- row-wise L2 normalisation
/// One block per row: norm[n] = ||x[n]||, y[n] = x[n] / max(norm, eps).
MICLE_KERNEL l2n_forward_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ norms,
                                   std::int64_t D, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + blockIdx.x * D;
    float s = 0;
    for (std::int64_t d = threadIdx.x; d < D; d += blockDim.x) s += xr[d] * xr[d];
    const float norm = sqrtf(block_sum(s, scratch));
    const float inv = 1.0f / fmaxf(norm, eps);
    for (std::int64_t d = threadIdx.x; d < D; d += blockDim.x) y[blockIdx.x * D + d] = xr[d] * inv;
    if (threadIdx.x == 0) norms[blockIdx.x] = norm;
}
/// dx = (dy - y (y . dy)) / max(norm, eps); below eps the map is linear (no projection).
MICLE_KERNEL l2n_backward_kernel(const float* __restrict__ y, const float* __restrict__ norms,
                                    const float* __restrict__ dy, float* __restrict__ dx, std::int64_t D, float eps) {
    __shared__ float scratch[32];
    const std::int64_t base = blockIdx.x * D;
    float s = 0;
    for (std::int64_t d = threadIdx.x; d < D; d += blockDim.x) s += y[base + d] * dy[base + d];
    const float norm = norms[blockIdx.x];
    const float dot = norm <= eps ? 0.0f : block_sum(s, scratch);
    const float inv = 1.0f / fmaxf(norm, eps);
    for (std::int64_t d = threadIdx.x; d < D; d += blockDim.x) dx[base + d] = (dy[base + d] - y[base + d] * dot) * inv;
}
inline void l2n_forward(cudaStream_t s, const float* x, float* y, float* norms, std::int64_t N, std::int64_t D,
                        float eps) {
    l2n_forward_kernel<0><<<static_cast<unsigned>(N), threads, 0, s>>>(x, y, norms, D, eps);
    check_launch("l2n_forward_kernel");
}
inline void l2n_backward(cudaStream_t s, const float* y, const float* norms, const float* dy, float* dx,
                         std::int64_t N, std::int64_t D, float eps) {
    l2n_backward_kernel<0><<<static_cast<unsigned>(N), threads, 0, s>>>(y, norms, dy, dx, D, eps);
    check_launch("l2n_backward_kernel");
}

// ---------------------------------------------------------------- softmax cross-entropy
/// One block per row: prob[n] = softmax(logits[n]), loss[n] = lse - logits[n, label].
MICLE_KERNEL softmax_xent_forward_kernel(const float* __restrict__ logits, const int* __restrict__ labels,
                                            float* __restrict__ prob, float* __restrict__ loss, std::int64_t K) {
    __shared__ float scratch[32];
    const float* row = logits + blockIdx.x * K;
    float mx = -INFINITY;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, row[k]);
    mx = block_max(mx, scratch);
    float s = 0;
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) s += expf(row[k] - mx);
    const float lse = mx + logf(block_sum(s, scratch));
    for (std::int64_t k = threadIdx.x; k < K; k += blockDim.x) prob[blockIdx.x * K + k] = expf(row[k] - lse);
    if (threadIdx.x == 0) loss[blockIdx.x] = lse - row[labels[blockIdx.x]];
}
/// dlogits[n, k] = (prob[n, k] - [k == label[n]]) / N.
MICLE_KERNEL softmax_xent_backward_kernel(const float* __restrict__ prob, const int* __restrict__ labels,
                                             float* __restrict__ d, std::int64_t N, std::int64_t K) {
    const float inv = 1.0f / static_cast<float>(N);
    MICLE_GRID_STRIDE(i, N * K) {
        const std::int64_t n = i / K, k = i % K;
        d[i] = (prob[i] - (k == labels[n] ? 1.0f : 0.0f)) * inv;
    }
}
inline void softmax_xent_forward(cudaStream_t s, const float* logits, const int* labels, float* prob, float* loss,
                                 std::int64_t N, std::int64_t K) {
    softmax_xent_forward_kernel<0><<<static_cast<unsigned>(N), threads, 0, s>>>(logits, labels, prob, loss, K);
    check_launch("softmax_xent_forward_kernel");
}
inline void softmax_xent_backward(cudaStream_t s, const float* prob, const int* labels, float* d, std::int64_t N,
                                  std::int64_t K) {
    softmax_xent_backward_kernel<0><<<blocks_for(N * K), threads, 0, s>>>(prob, labels, d, N, K);
    check_launch("softmax_xent_backward_kernel");
}

// ---------------------------------------------------------------- sigmoid binary cross-entropy
MICLE_KERNEL bce_forward_kernel(const float* __restrict__ x, const float* __restrict__ t, const float* __restrict__ m,
                                   float* __restrict__ loss, std::int64_t n) {
    MICLE_GRID_STRIDE(i, n) {
        const float l = fmaxf(x[i], 0.0f) - x[i] * t[i] + log1pf(expf(-fabsf(x[i])));
        loss[i] = m == nullptr ? l : (m[i] != 0.0f ? l : 0.0f);
    }
}
MICLE_KERNEL bce_backward_kernel(const float* __restrict__ x, const float* __restrict__ t, const float* __restrict__ m,
                                    float* __restrict__ d, std::int64_t n, float inv) {
    MICLE_GRID_STRIDE(i, n) {
        const float g = (1.0f / (1.0f + expf(-x[i])) - t[i]) * inv;
        d[i] = m == nullptr ? g : (m[i] != 0.0f ? g : 0.0f);
    }
}
/// Per-entry losses; `m` (a 0/1 mask, or null for every entry) zeroes the entries left out.
inline void bce_forward(cudaStream_t s, const float* x, const float* t, const float* m, float* loss, std::int64_t n) {
    bce_forward_kernel<0><<<blocks_for(n), threads, 0, s>>>(x, t, m, loss, n);
    check_launch("bce_forward_kernel");
}
/// The gradient of the mean over `kept` entries (0 where `m` leaves an entry out).
inline void bce_backward(cudaStream_t s, const float* x, const float* t, const float* m, float* d, std::int64_t n,
                         std::int64_t kept) {
    bce_backward_kernel<0><<<blocks_for(n), threads, 0, s>>>(x, t, m, d, n, kept ? 1.0f / static_cast<float>(kept) : 0.0f);
    check_launch("bce_backward_kernel");
}

// ---------------------------------------------------------------- NT-Xent rows
/// One block per anchor row k (row i = row0 + k of z) of the similarity matrix sim = z_a z^T
/// [rows, M]: logits sim / T over the allowed columns (not i itself; with groups, not i's own
/// group except its positive row0 + (k + rows/2) mod rows), then
///   loss[k] = lse_k - logit[k, pos],   g[k, j] = (softmax_kj - [j == pos]) / total  (0 if masked).
/// The single-process loss is row0 = 0, rows = total = M.
MICLE_KERNEL nt_xent_rows_kernel(const float* __restrict__ sim, const std::int64_t* __restrict__ groups,
                                    float* __restrict__ g, float* __restrict__ loss, std::int64_t M, std::int64_t row0,
                                    std::int64_t rows, std::int64_t total, float inv_t) {
    __shared__ float scratch[32];
    const std::int64_t k = blockIdx.x, i = row0 + k, pos = row0 + (k + rows / 2) % rows;
    const float* row = sim + k * M;
    auto allowed = [&](std::int64_t j) {
        if (j == i) return false;
        if (j == pos || groups == nullptr) return true;
        return groups[j] != groups[i];
    };
    float mx = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x)
        if (allowed(j)) mx = fmaxf(mx, row[j] * inv_t);
    mx = block_max(mx, scratch);
    float s = 0;
    for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x)
        if (allowed(j)) s += expf(row[j] * inv_t - mx);
    const float lse = mx + logf(block_sum(s, scratch));
    const float inv_total = 1.0f / static_cast<float>(total);
    for (std::int64_t j = threadIdx.x; j < M; j += blockDim.x) {
        const float p = allowed(j) ? expf(row[j] * inv_t - lse) : 0.0f;
        g[k * M + j] = (p - (j == pos ? 1.0f : 0.0f)) * inv_total;
    }
    if (threadIdx.x == 0) loss[k] = lse - row[pos] * inv_t;
}
inline void nt_xent_rows(cudaStream_t s, const float* sim, const std::int64_t* groups, float* g, float* loss,
                         std::int64_t M, std::int64_t row0, std::int64_t rows, std::int64_t total, float inv_t) {
    nt_xent_rows_kernel<0><<<static_cast<unsigned>(rows), threads, 0, s>>>(sim, groups, g, loss, M, row0, rows, total, inv_t);
    check_launch("nt_xent_rows_kernel");
}

// ---------------------------------------------------------------- optimizer updates
/// SGD with momentum (PyTorch): g = grad + wd w; buf = m buf + g; w -= lr (nesterov ? g + m buf : buf).
MICLE_KERNEL sgd_kernel(float* __restrict__ w, const float* __restrict__ grad, float* __restrict__ buf,
                           std::int64_t n, float lr, float momentum, float wd, bool nesterov) {
    MICLE_GRID_STRIDE(i, n) {
        const float gi = grad[i] + wd * w[i];
        const float b = momentum * buf[i] + gi;
        buf[i] = b;
        w[i] -= lr * (nesterov ? gi + momentum * b : b);
    }
}
inline void sgd(cudaStream_t s, float* w, const float* g, float* buf, std::int64_t n, float lr, float momentum,
                float wd, bool nesterov) {
    sgd_kernel<0><<<blocks_for(n), threads, 0, s>>>(w, g, buf, n, lr, momentum, wd, nesterov);
    check_launch("sgd_kernel");
}

/// LARS, pass 1: per-block partial sums of ||w||^2 and ||grad + wd w||^2 into
/// partial[2 * block] and partial[2 * block + 1] (a fixed number of blocks, in order).
constexpr unsigned lars_blocks = 128;
MICLE_KERNEL lars_norms_kernel(const float* __restrict__ w, const float* __restrict__ grad, std::int64_t n,
                                  float wd, double* __restrict__ partial) {
    __shared__ double scratch[32];
    double sw = 0, sg = 0;
    MICLE_GRID_STRIDE(i, n) {
        const double wi = w[i], gi = double(grad[i]) + double(wd) * wi;
        sw += wi * wi;
        sg += gi * gi;
    }
    sw = block_sum(sw, scratch);
    sg = block_sum(sg, scratch);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = sw;
        partial[2 * blockIdx.x + 1] = sg;
    }
}
/// LARS, pass 2: trust = eta ||w|| / ||g|| (1 when either is 0, or when not adapting);
/// v = m v + lr trust g;  w -= nesterov ? m v + lr trust g : v.
MICLE_KERNEL lars_update_kernel(float* __restrict__ w, const float* __restrict__ grad, float* __restrict__ v,
                                   std::int64_t n, float lr, float momentum, float wd, float eta, bool adapt,
                                   bool nesterov, const double* __restrict__ partial) {
    __shared__ float trust_shared;
    if (threadIdx.x == 0) {
        float trust = 1.0f;
        if (adapt) {
            double sw = 0, sg = 0;
            for (unsigned b = 0; b < lars_blocks; ++b) sw += partial[2 * b], sg += partial[2 * b + 1];
            const double wn = sqrt(sw), gn = sqrt(sg);
            if (wn > 0 && gn > 0) trust = static_cast<float>(eta * wn / gn);
        }
        trust_shared = trust;
    }
    __syncthreads();
    const float scaled = lr * trust_shared;
    MICLE_GRID_STRIDE(i, n) {
        const float gi = grad[i] + wd * w[i];
        const float vi = momentum * v[i] + scaled * gi;
        v[i] = vi;
        w[i] -= nesterov ? momentum * vi + scaled * gi : vi;
    }
}
inline void lars(cudaStream_t s, float* w, const float* g, float* v, std::int64_t n, float lr, float momentum,
                 float wd, float eta, bool adapt, bool nesterov, double* partial /* 2 * lars_blocks */) {
    if (adapt) {
        lars_norms_kernel<0><<<lars_blocks, threads, 0, s>>>(w, g, n, wd, partial);
        check_launch("lars_norms_kernel");
    }
    lars_update_kernel<0><<<blocks_for(n), threads, 0, s>>>(w, g, v, n, lr, momentum, wd, eta, adapt, nesterov, partial);
    check_launch("lars_update_kernel");
}

/// AdamW (PyTorch): w *= decay; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// w -= step_size m / (sqrt(v) inv_sqrt_c2 + eps).
MICLE_KERNEL adamw_kernel(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, std::int64_t n, float decay, float beta1, float beta2,
                             float step_size, float inv_sqrt_c2, float eps) {
    MICLE_GRID_STRIDE(i, n) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_c2 + eps);
    }
}
inline void adamw(cudaStream_t s, float* w, const float* g, float* m, float* v, std::int64_t n, float decay,
                  float beta1, float beta2, float step_size, float inv_sqrt_c2, float eps) {
    adamw_kernel<0><<<blocks_for(n), threads, 0, s>>>(w, g, m, v, n, decay, beta1, beta2, step_size, inv_sqrt_c2, eps);
    check_launch("adamw_kernel");
}

#undef MICLE_GRID_STRIDE
#undef MICLE_KERNEL

}  // namespace micle::cudnn_detail::kernels
