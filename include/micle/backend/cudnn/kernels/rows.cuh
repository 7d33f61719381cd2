#pragma once
// Row-wise kernels of the GPU backend: L2 normalisation, softmax cross-entropy, sigmoid binary
// cross-entropy (plain and masked) and NT-Xent's masked softmax rows. Reductions run in a
// fixed order (no atomics), so results are bitwise reproducible run to run.
#include "micle/backend/cudnn/kernels/common.cuh"

namespace micle::cudnn_detail::kernels {

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

}  // namespace micle::cudnn_detail::kernels
