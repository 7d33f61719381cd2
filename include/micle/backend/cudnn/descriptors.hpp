#pragma once
// RAII owners of cuDNN's legacy descriptors (tensor, filter, convolution, pooling,
// activation), in micle's layouts: 4-D tensors NHWC, filters KRSC (NHWC format).
//
// cuDNN 9 marks the legacy (non-graph) API deprecated. It is still the most direct way to
// run these layers, and every use of it is bracketed by MICLE_CUDNN_LEGACY_BEGIN/END so the
// deprecation warnings stay inside backend/cudnn/ and never reach user code.
#include <cudnn.h>

#include <cstdint>

#include "micle/backend/cudnn/runtime.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/shape.hpp"

// clang-format off
#define MICLE_CUDNN_LEGACY_BEGIN                                          \
    _Pragma("GCC diagnostic push")                                        \
    _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")       \
    _Pragma("nv_diag_suppress 1215")                                      \
    _Pragma("nv_diag_suppress 1444")
#define MICLE_CUDNN_LEGACY_END                                            \
    _Pragma("nv_diag_default 1215")                                       \
    _Pragma("nv_diag_default 1444")                                       \
    _Pragma("GCC diagnostic pop")
// clang-format on

MICLE_CUDNN_LEGACY_BEGIN

namespace micle::cudnn_detail {

inline int to_int(std::int64_t v, const char* what) {
    check(v >= 0 && v <= 0x7fffffff, "cudnn backend: ", what, " ", v, " does not fit cuDNN's int dimensions");
    return static_cast<int>(v);
}

/// cuDNN's data type of micle's element type.
inline cudnnDataType_t data_type(dtype t) { return t == dtype::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT; }

/// A 4-D NHWC float tensor descriptor ([N, C] is described as [N, C, 1, 1]).
class tensor_desc {
public:
    tensor_desc() { MICLE_CUDA_CHECK(cudnnCreateTensorDescriptor(&d_)); }
    explicit tensor_desc(const shape& s, cudnnDataType_t t = CUDNN_DATA_FLOAT) : tensor_desc() { set(s, t); }
    tensor_desc(const tensor_desc&) = delete;
    tensor_desc& operator=(const tensor_desc&) = delete;
    ~tensor_desc() { (void)cudnnDestroyTensorDescriptor(d_); }
    void set(const shape& s, cudnnDataType_t t = CUDNN_DATA_FLOAT) {
        const std::int64_t h = s.rank() == 4 ? s[2] : 1, w = s.rank() == 4 ? s[3] : 1;
        MICLE_CUDA_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NHWC, t, to_int(s[0], "batch"),
                                                    to_int(s[1], "channels"), to_int(h, "height"),
                                                    to_int(w, "width")));
    }
    operator cudnnTensorDescriptor_t() const noexcept { return d_; }

private:
    cudnnTensorDescriptor_t d_ = nullptr;
};

/// A KRSC filter descriptor for weights [O, C, kh, kw] (float, or bf16 in mixed precision).
class filter_desc {
public:
    explicit filter_desc(const shape& w, cudnnDataType_t t = CUDNN_DATA_FLOAT) {
        MICLE_CUDA_CHECK(cudnnCreateFilterDescriptor(&d_));
        MICLE_CUDA_CHECK(cudnnSetFilter4dDescriptor(d_, t, CUDNN_TENSOR_NHWC, to_int(w[0], "filters"),
                                                    to_int(w[1], "channels"), to_int(w[2], "kernel height"),
                                                    to_int(w[3], "kernel width")));
    }
    filter_desc(const filter_desc&) = delete;
    filter_desc& operator=(const filter_desc&) = delete;
    ~filter_desc() { (void)cudnnDestroyFilterDescriptor(d_); }
    operator cudnnFilterDescriptor_t() const noexcept { return d_; }

private:
    cudnnFilterDescriptor_t d_ = nullptr;
};

/// A 2-D cross-correlation (PyTorch's convolution) with fp32 accumulation; TF32 tensor
/// cores allowed or not.
class conv_desc {
public:
    /// `math`: CUDNN_TENSOR_OP_MATH for bf16 data, CUDNN_DEFAULT_MATH for fp32 with TF32,
    /// CUDNN_FMA_MATH for strict fp32 (as PyTorch sets them; the heuristics rank by it).
    conv_desc(std::int64_t pad_h, std::int64_t pad_w, std::int64_t stride_h, std::int64_t stride_w, cudnnMathType_t math) {
        MICLE_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&d_));
        MICLE_CUDA_CHECK(cudnnSetConvolution2dDescriptor(d_, to_int(pad_h, "padding"), to_int(pad_w, "padding"),
                                                         to_int(stride_h, "stride"), to_int(stride_w, "stride"), 1, 1,
                                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        MICLE_CUDA_CHECK(cudnnSetConvolutionMathType(d_, math));
    }
    conv_desc(const conv_desc&) = delete;
    conv_desc& operator=(const conv_desc&) = delete;
    ~conv_desc() { (void)cudnnDestroyConvolutionDescriptor(d_); }
    operator cudnnConvolutionDescriptor_t() const noexcept { return d_; }

private:
    cudnnConvolutionDescriptor_t d_ = nullptr;
};

class pooling_desc {
public:
    pooling_desc(cudnnPoolingMode_t mode, std::int64_t kh, std::int64_t kw, std::int64_t pad_h, std::int64_t pad_w,
                 std::int64_t stride_h, std::int64_t stride_w) {
        MICLE_CUDA_CHECK(cudnnCreatePoolingDescriptor(&d_));
        MICLE_CUDA_CHECK(cudnnSetPooling2dDescriptor(d_, mode, CUDNN_PROPAGATE_NAN, to_int(kh, "kernel"),
                                                     to_int(kw, "kernel"), to_int(pad_h, "padding"),
                                                     to_int(pad_w, "padding"), to_int(stride_h, "stride"),
                                                     to_int(stride_w, "stride")));
    }
    pooling_desc(const pooling_desc&) = delete;
    pooling_desc& operator=(const pooling_desc&) = delete;
    ~pooling_desc() { (void)cudnnDestroyPoolingDescriptor(d_); }
    operator cudnnPoolingDescriptor_t() const noexcept { return d_; }

private:
    cudnnPoolingDescriptor_t d_ = nullptr;
};

class relu_desc {
public:
    relu_desc() {
        MICLE_CUDA_CHECK(cudnnCreateActivationDescriptor(&d_));
        MICLE_CUDA_CHECK(cudnnSetActivationDescriptor(d_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
    }
    relu_desc(const relu_desc&) = delete;
    relu_desc& operator=(const relu_desc&) = delete;
    ~relu_desc() { (void)cudnnDestroyActivationDescriptor(d_); }
    operator cudnnActivationDescriptor_t() const noexcept { return d_; }

private:
    cudnnActivationDescriptor_t d_ = nullptr;
};

}  // namespace micle::cudnn_detail

MICLE_CUDNN_LEGACY_END
