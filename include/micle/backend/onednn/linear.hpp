#pragma once
#include <optional>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Fully connected layer on oneDNN's inner_product primitives. Activations are plain
/// [N,K]/[N,O]. Each pass reads the weights (and the weight gradient comes back) in the
/// layout the caller keeps them in, where oneDNN runs the same implementation for that
/// layout as for the one it prefers (`any`); otherwise that pass reorders them to its
/// preferred layout each call (in_layout_of). A layer keeps its weights in the layout that
/// leaves the fewest such reorders a step (adopt_preferred_layout): none on the CPUs where
/// the three passes' preferred layouts agree or their implementation does not depend on it.
template <>
class linear<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

private:
    /// The three passes' primitive descriptors for one problem, as functions of the weight
    /// layout (the backward ones hinted by a forward).
    struct pass_descs {
        const dnnl::engine& eng;
        md x, y, b, any;
        shape w_shape;
        bool has_bias;
        pass_descs(context_t& ctx, const md& x_desc, const dnnl::memory::dims& w_dims, bool bias)
            : eng(ctx.engine()), x(onednn_detail::plain_md(shape(x_desc.dims()))),
              y(onednn_detail::plain_md(shape{x_desc.dims()[0], w_dims[0]})),
              b(onednn_detail::plain_md(shape{w_dims[0]})), any(onednn_detail::any_md(shape(w_dims))),
              w_shape(shape(w_dims)), has_bias(bias) {}
        auto forward() const {
            return [this](const md& w) { return onednn_compat::ip_fwd_pd(eng, x, w, has_bias ? &b : nullptr, y); };
        }
        auto backward_data(const onednn_compat::ip_fwd::primitive_desc& hint) const {
            return [this, hint](const md& w) { return onednn_compat::ip_bwd_data_pd(eng, x, w, y, hint); };
        }
        auto backward_weights(const onednn_compat::ip_fwd::primitive_desc& hint) const {
            return [this, hint](const md& w) {
                return onednn_compat::ip_bwd_weights_pd(eng, x, w, has_bias ? &b : nullptr, y, hint);
            };
        }
    };

    /// The primitive made by `make` for weights (or their gradient) in the layout `w` they
    /// have, so that they are read and written in place, where oneDNN runs the same
    /// implementation for it as for its preferred layout (`any`); otherwise (no primitive,
    /// or a slower one: `ref`, or gemm where brgemm is preferred) the preferred one, with a
    /// reorder each call. Left to `any`, oneDNN's AVX2 inner products read and write the
    /// plain `ab` that their forward does not prefer: a projection head's 2048 x 2048
    /// weights were transposed twice a step.
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

public:

    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("linear", "input", x.dtype());
        checks::f32("linear", "weight", w.dtype());
        const shape ys = checks::linear(x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        entry& e = lookup(ctx, x, w, bias != nullptr, ys);
        const auto& xm = e.x_in.get(ctx, x.memory(), e.fwd_pd.src_desc());
        const auto& wm = e.w_fwd.get(ctx, w.memory(), e.fwd_pd.weights_desc());
        y.ensure(ctx, e.fwd_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, y.memory()}};
        if (bias) args.emplace(DNNL_ARG_BIAS, bias->memory());
        e.fwd.execute(ctx.stream(), args);
        last_ = &e;
    }

    /// How many weight reorders a training step (forward, backward_data, backward_weights)
    /// makes with the weights in layout `w` for inputs like `x`: one for each pass whose
    /// preferred layout is another and whose implementation for `w` is not the preferred
    /// one. For adopt_preferred_layout, and for tests and profiling.
    static int weight_reorders_per_step(context_t& ctx, const md& x, const md& w, bool has_bias) {
        const pass_descs p(ctx, x, w.dims(), has_bias);
        int n = 0;
        const auto fwd = in_layout_of(w, p.w_shape, p.forward());
        const auto bwd_data = in_layout_of(w, p.w_shape, p.backward_data(fwd));
        const auto bwd_weights = in_layout_of(w, p.w_shape, p.backward_weights(fwd));
        n += fwd.weights_desc() != w;
        n += bwd_data.weights_desc() != w;
        n += bwd_weights.diff_weights_desc() != w;
        return n;
    }

    /// Moves fp32 weights to the layout that leaves the fewest weight reorders a training
    /// step for inputs like `x` (nn::weighted_layer calls it before the first forward):
    /// among the three passes' preferred layouts and the weights' own, the first with the
    /// least (weight_reorders_per_step), the weights' own on a tie. A projection head's
    /// 2048 x 2048 weights were reordered three times a step. A blocked layout that would
    /// pad the weights (dimensions not a multiple of its blocks: a 5-class classifier) is
    /// not taken.
    void adopt_preferred_layout(context_t& ctx, const tensor_t& x, tensor_t& w, bool has_bias) {
        if (x.dtype() != dtype::f32 || w.dtype() != dtype::f32) return;  // forward names the error
        (void)checks::linear(x.shape(), w.shape(), nullptr);
        const pass_descs p(ctx, x.desc(), onednn_detail::to_dims(w.shape()), has_bias);
        const auto fwd = p.forward()(p.any);
        const md candidates[] = {w.desc(), fwd.weights_desc(), p.backward_data(fwd)(p.any).weights_desc(),
                                 p.backward_weights(fwd)(p.any).diff_weights_desc()};
        const auto plain_size = onednn_detail::plain_md(w.shape()).get_size();
        md best = w.desc();
        int fewest = weight_reorders_per_step(ctx, x.desc(), best, has_bias);
        for (const md& c : candidates) {
            if (fewest == 0) break;
            if (c == best || c.get_size() != plain_size) continue;
            const int n = weight_reorders_per_step(ctx, x.desc(), c, has_bias);
            if (n < fewest) fewest = n, best = c;
        }
        if (w.desc() != best) w = w.to_layout(ctx, best);
    }

    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        entry& e = current("backward_data");
        checks::same_shape("linear backward_data", "dy", dy.shape(), "forward output", e.y_shape);
        checks::same_shape("linear backward_data", "weight", w.shape(), "forward weight", e.w_shape);
        if (!e.bwd_data) {
            const pass_descs p(ctx, e.x_desc, onednn_detail::to_dims(e.w_shape), e.has_bias);
            e.bwd_data_pd = in_layout_of(w.desc(), p.w_shape, p.backward_data(e.fwd_pd));
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
            const pass_descs p(ctx, e.x_desc, onednn_detail::to_dims(e.w_shape), e.has_bias);
            e.bwd_weights_pd = in_layout_of(e.w_desc, p.w_shape, p.backward_weights(e.fwd_pd));
            e.bwd_weights = onednn_compat::ip_bwd_weights(e.bwd_weights_pd);
            if (e.has_bias) e.db_scratch = dnnl::memory(db, ctx.engine());
        }
        const auto& xm = e.x_bw.get(ctx, x.memory(), e.bwd_weights_pd.src_desc());
        const auto& dym = e.dy_bw.get(ctx, dy.memory(), e.bwd_weights_pd.diff_dst_desc());
        if (!(dw.defined() && dw.shape() == e.w_shape)) dw.ensure(ctx, e.w_desc);
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
    struct entry {
        shape x_shape, w_shape, y_shape;
        md x_desc, w_desc;
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
        md x, w;
        bool bias;
        bool operator==(const key& o) const { return x == o.x && w == o.w && bias == o.bias; }
    };
    entry& lookup(context_t& ctx, const tensor_t& x, const tensor_t& w, bool has_bias, const shape& ys) {
        return cache_.get(key{x.desc(), w.desc(), has_bias}, [&] {
            entry n;
            n.x_shape = x.shape();
            n.w_shape = w.shape();
            n.y_shape = ys;
            n.x_desc = x.desc();
            n.w_desc = w.desc();
            n.has_bias = has_bias;
            const pass_descs p(ctx, x.desc(), onednn_detail::to_dims(w.shape()), has_bias);
            n.fwd_pd = in_layout_of(w.desc(), p.w_shape, p.forward());
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
};

}  // namespace micle::ops
