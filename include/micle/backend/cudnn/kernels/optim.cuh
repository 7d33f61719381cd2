#pragma once
// The fused optimizer updates of the GPU backend (SGD, LARS with its per-layer norms, AdamW).
#include "micle/backend/cudnn/kernels/common.cuh"

namespace micle::cudnn_detail::kernels {

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

}  // namespace micle::cudnn_detail::kernels
