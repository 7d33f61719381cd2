#pragma once
#include <optional>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Fully connected layer on oneDNN's inner_product primitives. Activations are plain
/// [N,K]/[N,O]; the forward takes the weights in format `any` (reordered from the caller's
/// layout when it differs; a layer keeps them in the preferred one, adopt_preferred_layout),
/// the backward passes in the layout forward was given, where oneDNN has primitives for it
/// (in_layout_of), and the weight gradient comes back in that layout, as for conv2d.
template <>
class linear<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("linear", "input", x.dtype());
        checks::f32("linear", "weight", w.dtype());
        const shape ys = checks::linear(x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        entry& e = lookup(ctx, x, w.shape(), bias != nullptr, ys);
        w_desc_ = w.desc();
        const auto& xm = e.x_in.get(ctx, x.memory(), e.fwd_pd.src_desc());
        const auto& wm = e.w_fwd.get(ctx, w.memory(), e.fwd_pd.weights_desc());
        y.ensure(ctx, e.fwd_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, y.memory()}};
        if (bias) args.emplace(DNNL_ARG_BIAS, bias->memory());
        e.fwd.execute(ctx.stream(), args);
        last_ = &e;
    }

    /// Moves fp32 weights to the layout the inner product prefers for inputs like `x`
    /// (nn::weighted_layer calls it before the first forward), so that later steps read
    /// them, and write their gradient, without reorders (a projection head's 2048 x 2048
    /// weights were reordered three times a step). A blocked layout that would pad the
    /// weights (dimensions not a multiple of its blocks: a 5-class classifier) is not taken.
    void adopt_preferred_layout(context_t& ctx, const tensor_t& x, tensor_t& w, bool has_bias) {
        if (x.dtype() != dtype::f32 || w.dtype() != dtype::f32) return;  // forward names the error
        const shape ys = checks::linear(x.shape(), w.shape(), nullptr);
        const md want = lookup(ctx, x, w.shape(), has_bias, ys).fwd_pd.weights_desc();
        if (want.get_size() != onednn_detail::plain_md(w.shape()).get_size()) return;
        if (w.desc() != want) w = w.to_layout(ctx, want);
    }

    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        entry& e = current("backward_data");
        checks::same_shape("linear backward_data", "dy", dy.shape(), "forward output", e.y_shape);
        checks::same_shape("linear backward_data", "weight", w.shape(), "forward weight", e.w_shape);
        if (!e.bwd_data) {
            e.bwd_data_pd = in_layout_of(w.desc(), e.w_shape, [&](const md& wd) {
                return onednn_compat::ip_bwd_data_pd(ctx.engine(), onednn_detail::plain_md(e.x_shape), wd,
                                                     onednn_detail::plain_md(e.y_shape), e.fwd_pd);
            });
            e.bwd_data = onednn_compat::ip_bwd_data(e.bwd_data_pd);
        }
        const auto& dym = e.dy_bd.get(ctx, dy.memory(), e.bwd_data_pd.diff_dst_desc());
        const auto& wm = e.w_bd.get(ctx, w.memory(), e.bwd_data_pd.weights_desc());
        dx.ensure(ctx, e.bwd_data_pd.diff_src_desc());
        e.bwd_data.execute(ctx.stream(), {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dx.memory()}});
    }

    void backward_weights(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        entry& e = current("backward_weights");
        checks::same_shape("linear backward_weights", "input", x.shape(), "forward input", e.x_shape);
        checks::same_shape("linear backward_weights", "dy", dy.shape(), "forward output", e.y_shape);
        check(!dbias || e.has_bias, "linear backward_weights: a bias gradient was asked for, but forward had no bias");
        const md db = onednn_detail::plain_md(shape{e.w_shape[0]});
        if (!e.bwd_weights) {
            e.bwd_weights_pd = in_layout_of(w_desc_, e.w_shape, [&](const md& wd) {
                return onednn_compat::ip_bwd_weights_pd(ctx.engine(), onednn_detail::plain_md(e.x_shape), wd,
                                                        e.has_bias ? &db : nullptr, onednn_detail::plain_md(e.y_shape),
                                                        e.fwd_pd);
            });
            e.bwd_weights = onednn_compat::ip_bwd_weights(e.bwd_weights_pd);
            if (e.has_bias) e.db_scratch = dnnl::memory(db, ctx.engine());
        }
        const auto& xm = e.x_bw.get(ctx, x.memory(), e.bwd_weights_pd.src_desc());
        const auto& dym = e.dy_bw.get(ctx, dy.memory(), e.bwd_weights_pd.diff_dst_desc());
        if (!(dw.defined() && dw.shape() == e.w_shape)) dw.ensure(ctx, w_desc_);
        const auto& dwm = e.dw_out.target(ctx, dw.memory(), e.bwd_weights_pd.diff_weights_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, dwm}};
        if (e.has_bias) {
            if (dbias) dbias->ensure(ctx, db);
            args.emplace(DNNL_ARG_DIFF_BIAS, dbias ? dbias->memory() : e.db_scratch);
        }
        e.bwd_weights.execute(ctx.stream(), args);
        e.dw_out.flush(ctx, dwm, dw.memory());
    }

private:
    /// The backward primitive made by `make` for weights (or their gradient) in the layout
    /// `w` they have, so that they are read and written in place, where oneDNN runs the same
    /// implementation for it as for its preferred layout (`any`, reordered each call);
    /// otherwise (no primitive, or a slower one: `ref`) the preferred one. Left to `any`,
    /// oneDNN's AVX2 inner products read and write the plain `ab` that their forward does
    /// not prefer: a projection head's 2048 x 2048 weights were transposed twice a step.
    template <class Make>
    static std::invoke_result_t<Make&, const md&> in_layout_of(const md& w, const shape& w_shape, Make&& make) {
        auto preferred = make(onednn_detail::any_md(w_shape));
        if (preferred.weights_desc() == w || preferred.diff_weights_desc() == w) return preferred;
        try {
            auto own = make(w);
            if (std::string_view(own.impl_info_str()) == preferred.impl_info_str()) return own;
        } catch (const backend_error&) {
        }
        return preferred;
    }

    struct entry {
        shape x_shape, w_shape, y_shape;
        bool has_bias = false;
        onednn_compat::ip_fwd::primitive_desc fwd_pd;
        onednn_compat::ip_fwd fwd;
        onednn_compat::ip_bwd_data::primitive_desc bwd_data_pd;
        onednn_compat::ip_bwd_data bwd_data;
        onednn_compat::ip_bwd_weights::primitive_desc bwd_weights_pd;
        onednn_compat::ip_bwd_weights bwd_weights;
        dnnl::memory db_scratch;
        onednn_detail::stage x_in, w_fwd, dy_bd, w_bd, x_bw, dy_bw, dw_out;
    };
    struct key {
        md x;
        shape w;
        bool bias;
        bool operator==(const key& o) const { return x == o.x && w == o.w && bias == o.bias; }
    };
    entry& lookup(context_t& ctx, const tensor_t& x, const shape& w, bool has_bias, const shape& ys) {
        return cache_.get(key{x.desc(), w, has_bias}, [&] {
            entry n;
            n.x_shape = x.shape();
            n.w_shape = w;
            n.y_shape = ys;
            n.has_bias = has_bias;
            const md b = onednn_detail::plain_md(shape{w[0]});
            n.fwd_pd = onednn_compat::ip_fwd_pd(ctx.engine(), onednn_detail::plain_md(x.shape()),
                                                onednn_detail::any_md(w), has_bias ? &b : nullptr,
                                                onednn_detail::plain_md(ys));
            n.fwd = onednn_compat::ip_fwd(n.fwd_pd);
            return n;
        });
    }
    entry& current(const char* what) {
        check(last_ != nullptr, "linear: ", what, " called before forward");
        return *last_;
    }

    onednn_detail::shape_cache<key, entry> cache_;
    entry* last_ = nullptr;
    md w_desc_;
};

}  // namespace micle::ops
