#pragma once
// Every oneDNN 2.x operation-descriptor and primitive-descriptor construction in micle
// goes through this file. oneDNN 3.x removed the op descriptors (`*_forward::desc`) and
// builds primitive descriptors directly from memory descriptors; porting micle to 3.x
// means rewriting the bodies below and nothing else.
//
// A primitive descriptor that oneDNN cannot create (unsupported shape or layout) becomes a
// micle::backend_error naming the op and its memory descriptors.
#include <dnnl.hpp>

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "micle/core/error.hpp"

#if DNNL_VERSION_MAJOR != 2
#error "micle/backend/onednn/compat.hpp is written for oneDNN 2.x; port this file for other versions"
#endif

namespace micle::onednn_compat {

using md = dnnl::memory::desc;
using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;

inline std::string describe(const md& d) {
    std::ostringstream os;
    os << '[';
    const auto ds = d.dims();
    for (std::size_t i = 0; i < ds.size(); ++i) os << (i ? ", " : "") << ds[i];
    os << ']';
    return os.str();
}

/// A 64-bit fingerprint of a memory layout: data type, dims, padding, offset and the
/// blocking (strides and inner blocks), so two descriptors of one buffer size and one
/// arrangement of values get one id (FNV-1a over the fields, not over the struct's bytes).
inline std::uint64_t layout_id(const md& d) {
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&h](std::int64_t v) {
        for (int i = 0; i < 8; ++i) {
            h ^= std::uint64_t(v >> (8 * i)) & 0xffu;
            h *= 1099511628211ull;
        }
    };
    const dnnl_memory_desc_t& c = d.data;
    mix(c.ndims);
    mix(c.data_type);
    mix(c.format_kind);
    mix(c.offset0);
    for (int i = 0; i < c.ndims; ++i) {
        mix(c.dims[i]);
        mix(c.padded_dims[i]);
        mix(c.padded_offsets[i]);
    }
    if (c.format_kind == dnnl_blocked) {
        const auto& b = c.format_desc.blocking;
        for (int i = 0; i < c.ndims; ++i) mix(b.strides[i]);
        mix(b.inner_nblks);
        for (int i = 0; i < b.inner_nblks; ++i) {
            mix(b.inner_blks[i]);
            mix(b.inner_idxs[i]);
        }
    }
    mix(c.extra.flags);
    return h;
}

template <class F>
auto make(const char* op, std::initializer_list<const md*> mds, F&& f) {
    try {
        return f();
    } catch (const dnnl::error& e) {
        std::ostringstream os;
        os << op << " (onednn): cannot create the primitive for";
        for (const md* m : mds) os << ' ' << describe(*m);
        os << ": " << e.what();
        throw backend_error(os.str());
    }
}

// ---------------------------------------------------------------- convolution
using conv_fwd = dnnl::convolution_forward;
using conv_bwd_data = dnnl::convolution_backward_data;
using conv_bwd_weights = dnnl::convolution_backward_weights;

// `alg` is convolution_direct, or convolution_winograd (F(4x4, 3x3); oneDNN 2.6 has it for
// fp32 on AVX-512 CPUs only: conv_fwd_pd_if says whether it exists for a shape).
inline conv_fwd::desc conv_fwd_desc(const md& src, const md& w, const md* bias, const md& dst, const dims& strides,
                                    const dims& pad, dnnl::algorithm alg) {
    return bias ? conv_fwd::desc(dnnl::prop_kind::forward_training, alg, src, w, *bias, dst, strides, pad, pad)
                : conv_fwd::desc(dnnl::prop_kind::forward_training, alg, src, w, dst, strides, pad, pad);
}

inline conv_fwd::primitive_desc conv_fwd_pd(const dnnl::engine& eng, const md& src, const md& w, const md* bias,
                                            const md& dst, const dims& strides, const dims& pad,
                                            dnnl::algorithm alg = dnnl::algorithm::convolution_direct) {
    return make("conv2d", {&src, &w, &dst},
                [&] { return conv_fwd::primitive_desc(conv_fwd_desc(src, w, bias, dst, strides, pad, alg), eng); });
}

inline conv_bwd_data::primitive_desc conv_bwd_data_pd(const dnnl::engine& eng, const md& diff_src, const md& w,
                                                      const md& diff_dst, const dims& strides, const dims& pad,
                                                      const conv_fwd::primitive_desc& hint,
                                                      dnnl::algorithm alg = dnnl::algorithm::convolution_direct) {
    return make("conv2d backward_data", {&diff_src, &w, &diff_dst}, [&] {
        return conv_bwd_data::primitive_desc(conv_bwd_data::desc(alg, diff_src, w, diff_dst, strides, pad, pad), eng,
                                             hint);
    });
}

inline conv_bwd_weights::desc conv_bwd_weights_desc(const md& src, const md& diff_w, const md* diff_bias,
                                                    const md& diff_dst, const dims& strides, const dims& pad,
                                                    dnnl::algorithm alg) {
    return diff_bias ? conv_bwd_weights::desc(alg, src, diff_w, *diff_bias, diff_dst, strides, pad, pad)
                     : conv_bwd_weights::desc(alg, src, diff_w, diff_dst, strides, pad, pad);
}

inline conv_bwd_weights::primitive_desc conv_bwd_weights_pd(const dnnl::engine& eng, const md& src, const md& diff_w,
                                                            const md* diff_bias, const md& diff_dst,
                                                            const dims& strides, const dims& pad,
                                                            const conv_fwd::primitive_desc& hint,
                                                            dnnl::algorithm alg = dnnl::algorithm::convolution_direct) {
    return make("conv2d backward_weights", {&src, &diff_w, &diff_dst}, [&] {
        return conv_bwd_weights::primitive_desc(
            conv_bwd_weights_desc(src, diff_w, diff_bias, diff_dst, strides, pad, alg), eng, hint);
    });
}

/// The forward primitive descriptor for `alg` when oneDNN has an implementation of it for
/// these descriptors and of both its gradients (weights gradient in fp32, as conv2d asks
/// for it), nothing otherwise: for algorithms that exist on some CPUs and shapes only.
inline std::optional<conv_fwd::primitive_desc> conv_fwd_pd_if(const dnnl::engine& eng, const md& src, const md& w,
                                                              const md* bias, const md& dst, const md& diff_w,
                                                              const dims& strides, const dims& pad,
                                                              dnnl::algorithm alg) {
    try {
        conv_fwd::primitive_desc fwd(conv_fwd_desc(src, w, bias, dst, strides, pad, alg), eng);
        [[maybe_unused]] conv_bwd_data::primitive_desc data(conv_bwd_data::desc(alg, src, w, dst, strides, pad, pad), eng, fwd);
        [[maybe_unused]] conv_bwd_weights::primitive_desc weights(
            conv_bwd_weights_desc(src, diff_w, bias, dst, strides, pad, alg), eng, fwd);
        return fwd;
    } catch (const dnnl::error&) {
        return std::nullopt;
    }
}

// ---------------------------------------------------------------- matrix product
inline dnnl::matmul::primitive_desc matmul_pd(const dnnl::engine& eng, const md& src, const md& weights, const md& dst) {
    return make("matmul", {&src, &weights, &dst},
                [&] { return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), eng); });
}

// ---------------------------------------------------------------- batch normalisation
using bn_fwd = dnnl::batch_normalization_forward;
using bn_bwd = dnnl::batch_normalization_backward;
using bn_flags = dnnl::normalization_flags;

inline bn_flags bn_scale_shift() { return bn_flags::use_scale | bn_flags::use_shift; }
inline bn_flags bn_fuse_relu() { return bn_flags::fuse_norm_relu; }
inline bn_flags bn_global_stats() { return bn_flags::use_global_stats; }

inline bn_fwd::primitive_desc bn_fwd_pd(const dnnl::engine& eng, bool training, const md& data, float eps,
                                        bn_flags flags) {
    return make("batch_norm", {&data}, [&] {
        return bn_fwd::primitive_desc(
            bn_fwd::desc(training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference, data, eps,
                         flags),
            eng);
    });
}

inline bn_bwd::primitive_desc bn_bwd_pd(const dnnl::engine& eng, const md& data, float eps, bn_flags flags,
                                        const bn_fwd::primitive_desc& hint) {
    return make("batch_norm backward", {&data}, [&] {
        return bn_bwd::primitive_desc(bn_bwd::desc(dnnl::prop_kind::backward, data, data, eps, flags), eng, hint);
    });
}

// ---------------------------------------------------------------- eltwise, binary
using eltwise_fwd = dnnl::eltwise_forward;
using eltwise_bwd = dnnl::eltwise_backward;

inline eltwise_fwd::primitive_desc relu_fwd_pd(const dnnl::engine& eng, const md& data) {
    return make("relu", {&data}, [&] {
        return eltwise_fwd::primitive_desc(
            eltwise_fwd::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu, data, 0.f, 0.f), eng);
    });
}

inline eltwise_bwd::primitive_desc relu_bwd_pd(const dnnl::engine& eng, const md& data,
                                               const eltwise_fwd::primitive_desc& hint) {
    return make("relu backward", {&data}, [&] {
        return eltwise_bwd::primitive_desc(eltwise_bwd::desc(dnnl::algorithm::eltwise_relu, data, data, 0.f, 0.f),
                                           eng, hint);
    });
}

inline dnnl::binary::primitive_desc sub_pd(const dnnl::engine& eng, const md& a, const md& b, const md& dst) {
    return make("subtract", {&a, &b}, [&] {
        return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_sub, a, b, dst), eng);
    });
}

/// a + b, or max(a + b, 0) with `relu` (an eltwise post-op: one pass over the data).
inline dnnl::binary::primitive_desc add_pd(const dnnl::engine& eng, const md& a, const md& b, const md& dst,
                                           bool relu = false) {
    return make(relu ? "add_relu" : "add", {&a, &b}, [&] {
        dnnl::primitive_attr attr;
        if (relu) {
            dnnl::post_ops ops;
            ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
            attr.set_post_ops(ops);
        }
        return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, a, b, dst), attr, eng);
    });
}

// ---------------------------------------------------------------- pooling
using pool_fwd = dnnl::pooling_forward;
using pool_bwd = dnnl::pooling_backward;

// Symmetric padding reproduces PyTorch's floor-mode output size, since oneDNN derives the
// output size with the same integer division.
inline pool_fwd::primitive_desc pool_fwd_pd(const dnnl::engine& eng, dnnl::algorithm alg, const md& src,
                                            const md& dst, const dims& strides, const dims& kernel,
                                            const dims& pad) {
    return make("pool2d", {&src, &dst}, [&] {
        return pool_fwd::primitive_desc(
            pool_fwd::desc(dnnl::prop_kind::forward_training, alg, src, dst, strides, kernel, pad, pad), eng);
    });
}

inline pool_bwd::primitive_desc pool_bwd_pd(const dnnl::engine& eng, dnnl::algorithm alg, const md& diff_src,
                                            const md& diff_dst, const dims& strides, const dims& kernel,
                                            const dims& pad, const pool_fwd::primitive_desc& hint) {
    return make("pool2d backward", {&diff_src, &diff_dst}, [&] {
        return pool_bwd::primitive_desc(pool_bwd::desc(alg, diff_src, diff_dst, strides, kernel, pad, pad), eng,
                                        hint);
    });
}

// ---------------------------------------------------------------- inner product
using ip_fwd = dnnl::inner_product_forward;
using ip_bwd_data = dnnl::inner_product_backward_data;
using ip_bwd_weights = dnnl::inner_product_backward_weights;

inline ip_fwd::primitive_desc ip_fwd_pd(const dnnl::engine& eng, const md& src, const md& w, const md* bias,
                                        const md& dst) {
    return make("linear", {&src, &w, &dst}, [&] {
        const auto d = bias ? ip_fwd::desc(dnnl::prop_kind::forward_training, src, w, *bias, dst)
                            : ip_fwd::desc(dnnl::prop_kind::forward_training, src, w, dst);
        return ip_fwd::primitive_desc(d, eng);
    });
}

inline ip_bwd_data::primitive_desc ip_bwd_data_pd(const dnnl::engine& eng, const md& diff_src, const md& w,
                                                  const md& diff_dst, const ip_fwd::primitive_desc& hint) {
    return make("linear backward_data", {&diff_src, &w, &diff_dst}, [&] {
        return ip_bwd_data::primitive_desc(ip_bwd_data::desc(diff_src, w, diff_dst), eng, hint);
    });
}

inline ip_bwd_weights::primitive_desc ip_bwd_weights_pd(const dnnl::engine& eng, const md& src, const md& diff_w,
                                                        const md* diff_bias, const md& diff_dst,
                                                        const ip_fwd::primitive_desc& hint) {
    return make("linear backward_weights", {&src, &diff_w, &diff_dst}, [&] {
        const auto d = diff_bias ? ip_bwd_weights::desc(src, diff_w, *diff_bias, diff_dst)
                                 : ip_bwd_weights::desc(src, diff_w, diff_dst);
        return ip_bwd_weights::primitive_desc(d, eng, hint);
    });
}

// ---------------------------------------------------------------- softmax
inline dnnl::softmax_v2_forward::primitive_desc log_softmax_pd(const dnnl::engine& eng, const md& data, int axis) {
    return make("softmax_cross_entropy", {&data}, [&] {
        return dnnl::softmax_v2_forward::primitive_desc(
            dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::softmax_log, data,
                                           data, axis),
            eng);
    });
}

// ---------------------------------------------------------------- reorder
inline dnnl::reorder make_reorder(const dnnl::engine& eng, const md& from, const md& to) {
    return make("reorder", {&from, &to}, [&] { return dnnl::reorder(dnnl::reorder::primitive_desc(eng, from, eng, to)); });
}

/// A reorder that adds `from` to what `to` holds (a sum post-op).
inline dnnl::reorder make_accumulating_reorder(const dnnl::engine& eng, const md& from, const md& to) {
    return make("accumulating reorder", {&from, &to}, [&] {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(ops);
        return dnnl::reorder(dnnl::reorder::primitive_desc(eng, from, eng, to, attr));
    });
}

}  // namespace micle::onednn_compat
