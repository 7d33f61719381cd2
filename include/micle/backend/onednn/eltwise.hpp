#pragma once
#include <unordered_map>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// ReLU on oneDNN's eltwise primitives, in the layout and type (f32, or bf16 in mixed
/// precision) of its input.
template <>
class relu<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        check(x.defined() && !x.shape().has_zero(), "relu: empty or zero-sized input ", x.shape());
        entry& e = lookup(ctx, x.desc());
        y.ensure(ctx, e.fwd_pd.dst_desc());
        e.fwd.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()}, {DNNL_ARG_DST, y.memory()}});
    }

    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dx) {
        checks::same_shape("relu backward", "input", x.shape(), "dy", dy.shape());
        entry& e = lookup(ctx, x.desc());
        if (!e.bwd) {
            e.bwd_pd = onednn_compat::relu_bwd_pd(ctx.engine(), x.desc(), e.fwd_pd);
            e.bwd = onednn_compat::eltwise_bwd(e.bwd_pd);
        }
        const auto& dym = e.dy_in.get(ctx, dy.memory(), e.bwd_pd.diff_dst_desc());
        dx.ensure(ctx, e.bwd_pd.diff_src_desc());
        e.bwd.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_SRC, dx.memory()}});
    }

private:
    struct entry {
        onednn_compat::eltwise_fwd::primitive_desc fwd_pd;
        onednn_compat::eltwise_fwd fwd;
        onednn_compat::eltwise_bwd::primitive_desc bwd_pd;
        onednn_compat::eltwise_bwd bwd;
        onednn_detail::stage dy_in;
    };
    entry& lookup(context_t& ctx, const md& x) {
        return cache_.get(x, [&] {
            entry e;
            e.fwd_pd = onednn_compat::relu_fwd_pd(ctx.engine(), x);
            e.fwd = onednn_compat::eltwise_fwd(e.fwd_pd);
            return e;
        });
    }
    onednn_detail::shape_cache<md, entry> cache_;
};

/// Elementwise sum on oneDNN's binary primitive; the output takes the layout of `a`
/// (or of `b` when the output is `b` itself) and the inputs' type (f32 or bf16, the same
/// for both). In-place (y aliasing an input) is allowed.
template <>
class add<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    void forward(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, false); }
    /// y = max(a + b, 0): the binary primitive with a ReLU post-op, one pass.
    void forward_relu(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y) { run(ctx, a, b, y, true); }

private:
    struct key {
        md a, b, y;
        bool relu;
        bool operator==(const key& o) const { return a == o.a && b == o.b && y == o.y && relu == o.relu; }
    };
    void run(context_t& ctx, const tensor_t& a, const tensor_t& b, tensor_t& y, bool relu) {
        const char* op = relu ? "add_relu" : "add";
        checks::same_dtype(op, "a", a.dtype(), "b", b.dtype());
        checks::same_shape(op, "a", a.shape(), "b", b.shape());
        check(a.defined() && !a.shape().has_zero(), op, ": empty or zero-sized input ", a.shape());
        const md dst = &y == &b ? b.desc() : a.desc();
        if (&y != &a && &y != &b) y.ensure(ctx, dst);
        // oneDNN's JIT binary wants both sources in one layout (NHWC plus blocked runs its
        // reference kernel, 10x slower): the other source is reordered to the output's
        const auto& am = a_in_.get(ctx, a.memory(), dst);
        const auto& bm = b_in_.get(ctx, b.memory(), dst);
        const md ad = am.get_desc(), bd = bm.get_desc();
        auto& prim = cache_.get(key{ad, bd, dst, relu},
                                [&] { return dnnl::binary(onednn_compat::add_pd(ctx.engine(), ad, bd, dst, relu)); });
        prim.execute(ctx.stream(), {{DNNL_ARG_SRC_0, am}, {DNNL_ARG_SRC_1, bm}, {DNNL_ARG_DST, y.memory()}});
    }
    onednn_detail::shape_cache<key, dnnl::binary> cache_;
    onednn_detail::stage a_in_, b_in_;
};

}  // namespace micle::ops
