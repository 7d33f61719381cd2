#pragma once
// Row-major matrix products on cuBLAS. cuBLAS is column-major; a row-major [r, c] matrix
// is its column-major transpose, so C = op(A) op(B) in row-major is computed as
// C^T = op(B)^T op(A)^T in column-major: operands swap places, transposes stay.
#include <cstdint>

#include "micle/backend/cudnn/tensor.hpp"

namespace micle::cudnn_detail {

/// Row-major C [m, n] = alpha * op(A) op(B) + beta * C, where op(A) is [m, k] and op(B)
/// [k, n]; A is stored [m, k] (or [k, m] when trans_a), B [k, n] (or [n, k] when trans_b).
inline void gemm_rows(context<cudnn>& ctx, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      float alpha, const float* a, const float* b, float beta, float* c,
                      cublasComputeType_t compute) {
    const int lda = to_int_dim(trans_a ? m : k), ldb = to_int_dim(trans_b ? k : n), ldc = to_int_dim(n);
    MICLE_CUDA_CHECK(cublasGemmEx(ctx.blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  to_int_dim(n), to_int_dim(m), to_int_dim(k), &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F,
                                  lda, &beta, c, CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace micle::cudnn_detail
