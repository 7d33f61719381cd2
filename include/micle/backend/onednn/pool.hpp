#pragma once
#include <unordered_map>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Max and average pooling on oneDNN's pooling primitives, in the layout and type (f32,
/// or bf16 in mixed precision) of the input.
template <>
class pool2d<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit pool2d(pool2d_params p) : p_(p) {}
    const pool2d_params& params() const noexcept { return p_; }

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        const shape ys = checks::pool2d(p_, x.shape());
        entry& e = cache_.get(x.desc(), [&] {
            entry n;
            n.fwd_pd = onednn_compat::pool_fwd_pd(ctx.engine(), algorithm(), x.desc(), onednn_detail::any_md(ys, x.dtype()),
                                                  {p_.stride_h, p_.stride_w}, {p_.kernel_h, p_.kernel_w},
                                                  {p_.pad_h, p_.pad_w});
            n.fwd = onednn_compat::pool_fwd(n.fwd_pd);
            if (p_.kind == pool_kind::max) n.workspace = dnnl::memory(n.fwd_pd.workspace_desc(), ctx.engine());
            return n;
        });
        y.ensure(ctx, e.fwd_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, x.memory()}, {DNNL_ARG_DST, y.memory()}};
        if (e.workspace) args.emplace(DNNL_ARG_WORKSPACE, e.workspace);
        e.fwd.execute(ctx.stream(), args);
        last_ = &e;
        last_x_ = x.desc();
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(last_ != nullptr, "pool2d: backward called before forward");
        entry& e = *last_;
        const auto yd = e.fwd_pd.dst_desc().dims();
        checks::same_shape("pool2d backward", "dy", dy.shape(), "forward output",
                           shape(std::span<const std::int64_t>(yd.data(), yd.size())));
        if (!e.bwd) {
            e.bwd_pd = onednn_compat::pool_bwd_pd(ctx.engine(), algorithm(), last_x_, e.fwd_pd.dst_desc(),
                                                  {p_.stride_h, p_.stride_w}, {p_.kernel_h, p_.kernel_w},
                                                  {p_.pad_h, p_.pad_w}, e.fwd_pd);
            e.bwd = onednn_compat::pool_bwd(e.bwd_pd);
        }
        const auto& dym = e.dy_in.get(ctx, dy.memory(), e.bwd_pd.diff_dst_desc());
        dx.ensure(ctx, e.bwd_pd.diff_src_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_SRC, dx.memory()}};
        if (e.workspace) args.emplace(DNNL_ARG_WORKSPACE, e.workspace);
        e.bwd.execute(ctx.stream(), args);
    }

private:
    struct entry {
        onednn_compat::pool_fwd::primitive_desc fwd_pd;
        onednn_compat::pool_fwd fwd;
        onednn_compat::pool_bwd::primitive_desc bwd_pd;
        onednn_compat::pool_bwd bwd;
        dnnl::memory workspace;
        onednn_detail::stage dy_in;
    };
    dnnl::algorithm algorithm() const {
        switch (p_.kind) {
            case pool_kind::max: return dnnl::algorithm::pooling_max;
            case pool_kind::avg_include_pad: return dnnl::algorithm::pooling_avg_include_padding;
            default: return dnnl::algorithm::pooling_avg_exclude_padding;
        }
    }

    pool2d_params p_;
    onednn_detail::shape_cache<md, entry> cache_;
    entry* last_ = nullptr;
    md last_x_;
};

/// Global average pooling: a pooling primitive whose kernel is the whole image, in the
/// input's layout, then a reorder of the [N,C,1,1] result into a plain [N,C] tensor. The
/// output is f32 whatever the input (the head computes in f32): a bf16 input is pooled in
/// bf16 (oneDNN accumulates in f32) and rounded once to bf16 before the conversion, and
/// its gradient is bf16.
template <>
class global_avg_pool<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        expect_rank(x.shape(), 4, "global_avg_pool", "input");
        const auto& s = x.shape();
        entry& e = cache_.get(x.desc(), [&] {
            entry n;
            n.fwd_pd = onednn_compat::pool_fwd_pd(ctx.engine(), dnnl::algorithm::pooling_avg_exclude_padding, x.desc(),
                                                  onednn_detail::any_md(shape{s[0], s[1], 1, 1}, x.dtype()), {1, 1}, {s[2], s[3]},
                                                  {0, 0});
            n.fwd = onednn_compat::pool_fwd(n.fwd_pd);
            n.plain4 = onednn_detail::plain_md(shape{s[0], s[1], 1, 1});
            return n;
        });
        y.ensure(ctx, onednn_detail::plain_md(shape{s[0], s[1]}));
        const dnnl::memory y4(e.plain4, ctx.engine(), y.memory().get_data_handle());
        const auto& pooled = e.y_out.target(ctx, y4, e.fwd_pd.dst_desc());
        e.fwd.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()}, {DNNL_ARG_DST, pooled}});
        e.y_out.flush(ctx, pooled, y4);
        last_ = &e;
        last_x_ = x.desc();
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        check(last_ != nullptr, "global_avg_pool: backward called before forward");
        entry& e = *last_;
        const auto xd = last_x_.dims();
        checks::same_shape("global_avg_pool backward", "dy", dy.shape(), "forward output", shape{xd[0], xd[1]});
        check(dy.is_plain(), "global_avg_pool backward: dy must be plain [N,C]");
        if (!e.bwd) {
            e.bwd_pd = onednn_compat::pool_bwd_pd(ctx.engine(), dnnl::algorithm::pooling_avg_exclude_padding, last_x_,
                                                  e.fwd_pd.dst_desc(), {1, 1}, {xd[2], xd[3]}, {0, 0}, e.fwd_pd);
            e.bwd = onednn_compat::pool_bwd(e.bwd_pd);
        }
        const dnnl::memory dy4(e.plain4, ctx.engine(), dy.memory().get_data_handle());
        const auto& dym = e.dy_in.get(ctx, dy4, e.bwd_pd.diff_dst_desc());
        dx.ensure(ctx, e.bwd_pd.diff_src_desc());
        e.bwd.execute(ctx.stream(), {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_SRC, dx.memory()}});
    }

private:
    struct entry {
        onednn_compat::pool_fwd::primitive_desc fwd_pd;
        onednn_compat::pool_fwd fwd;
        onednn_compat::pool_bwd::primitive_desc bwd_pd;
        onednn_compat::pool_bwd bwd;
        md plain4;
        onednn_detail::stage y_out, dy_in;
    };
    onednn_detail::shape_cache<md, entry> cache_;
    entry* last_ = nullptr;
    md last_x_;
};

}  // namespace micle::ops
