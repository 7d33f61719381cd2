#pragma once
// What every kernel family of the GPU backend shares (kernels/*.cuh): the launch shape,
// the launch check, the grid-stride loop, bf16 conversions and block reductions.
#if !defined(__CUDACC__)
#error "micle/backend/cudnn/kernels holds CUDA kernels: compile this translation unit as CUDA (nvcc)"
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

}  // namespace micle::cudnn_detail::kernels
