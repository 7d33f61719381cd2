#pragma once
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "micle/backend/onednn/lowered_conv.hpp"
#include "micle/backend/onednn/small_map_conv.hpp"
#include "micle/backend/onednn/space_to_depth_conv.hpp"
#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Convolution on oneDNN: forward_training, backward_data and backward_weights primitives
/// built once per input descriptor. Source, weights and destination use format `any`, so
/// oneDNN picks its blocked layouts; inputs in another layout are reordered into cached
/// buffers. The weight gradient is returned in the layout of the weights passed to
/// `forward`, so that an optimizer can update weights and gradients element by element.
/// `preferred_weights_desc` is the layout that saves the per-step weight reorders (of the
/// oneDNN primitive, or of the matrix-product forms below); nn::conv2d layers move their
/// weights to it at their first forward (`adopt_preferred_layout`).
/// Convolutions over maps no larger than the kernel (and no bias) run as one matrix product
/// per pass instead (onednn_detail::small_map_conv). Where oneDNN's weight gradient for a
/// padded convolution would be a GEMM per image, the input is padded explicitly so that a
/// JIT kernel runs (see explicitly_padded_pd).
///
/// In mixed precision (onednn_options::bf16, or a bf16 input) the convolution reads and
/// writes bf16 activations and converts the fp32 weights to a bf16 copy per call (kept
/// in a cached buffer); oneDNN accumulates in fp32 (AMX or AVX512-BF16 dot products) and
/// writes the weight gradient in fp32; the small-map matrix products likewise. With AMX,
/// the gradients of 1x1 convolutions and of convolutions onto maps of at most 16 positions
/// (and the forward of some of them) run as matrix products over the NHWC activations
/// (im2col; onednn_detail::lowered_conv), because oneDNN 2.6's AMX convolution kernels are
/// slow on those shapes and its AMX matrix product is not. The weight gradient of a stride-2
/// convolution over at most 4 channels (the stem) runs, with AMX, as that of a stride-1
/// convolution over the input rearranged space-to-depth (onednn_detail::space_to_depth_grad),
/// which oneDNN's kernels handle better than the strided form.
/// In fp32 on AVX-512 CPUs, convolutions onto maps of at most 4 positions (no bias) run
/// lowered too (lowered_conv::pays_fp32); on AVX2 CPUs only those with kernels larger than
/// 1x1; and 3x3 stride-1 convolutions over 32 channels or more onto maps of 4x4 and more run
/// oneDNN's Winograd kernels in all three passes (winograd_pays; onednn_options::winograd).
/// Each rule is where its form measured faster: docs/performance.md#what-the-fp32-step-runs
/// and the log it links.
template <>
class conv2d<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit conv2d(conv2d_params p) : p_(p) {}
    const conv2d_params& params() const noexcept { return p_; }

    void forward(context_t& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias, tensor_t& y) {
        checks::f32("conv2d", "weight", w.dtype());
        if (bias) checks::f32("conv2d", "bias", bias->dtype());
        checks::conv2d(p_, x.shape(), w.shape(), bias ? &bias->shape() : nullptr);
        entry& e = lookup(ctx, x.desc(), w.shape(), bias != nullptr);
        w_desc_ = w.desc();
        last_ = &e;
        if (e.small) return e.small->forward(ctx, x, w, y);
        if (e.lowered && e.lowered->lowers_forward()) return e.lowered->forward(ctx, x, w, y);
        const auto& src = e.x_fwd.get(ctx, x.memory(), e.fwd_pd.src_desc());
        const auto& wm = e.w_fwd.get(ctx, w.memory(), e.fwd_pd.weights_desc());
        y.ensure(ctx, e.fwd_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, y.memory()}};
        if (bias) args.emplace(DNNL_ARG_BIAS, bias->memory());
        e.fwd.execute(ctx.stream(), args);
    }

    void backward_data(context_t& ctx, const tensor_t& dy, const tensor_t& w, tensor_t& dx) {
        entry& e = current("backward_data");
        checks::same_shape("conv2d backward_data", "dy", dy.shape(), "forward output", e.y_shape);
        checks::same_shape("conv2d backward_data", "weight", w.shape(), "forward weight", e.w_shape);
        if (e.small) return e.small->backward_data(ctx, dy, w, dx);
        if (e.lowered) return e.lowered->backward_data(ctx, dy, w, dx);
        if (!e.bwd_data) {
            auto pd = onednn_compat::conv_bwd_data_pd(
                ctx.engine(), onednn_detail::any_md(e.x_shape, e.type), onednn_detail::any_md(e.w_shape, e.type),
                onednn_detail::any_md(e.y_shape, e.type), strides(), padding(), e.fwd_pd, e.algorithm());
            e.bwd_data.emplace(std::move(pd));
        }
        auto& b = *e.bwd_data;
        const auto& dym = b.dy_in.get(ctx, dy.memory(), b.pd.diff_dst_desc());
        const auto& wm = b.w_in.get(ctx, w.memory(), b.pd.weights_desc());
        dx.ensure(ctx, b.pd.diff_src_desc());
        b.prim.execute(ctx.stream(), {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dx.memory()}});
    }

    void backward_weights(context_t& ctx, const tensor_t& x, const tensor_t& dy, tensor_t& dw, tensor_t* dbias) {
        entry& e = current("backward_weights");
        checks::same_shape("conv2d backward_weights", "input", x.shape(), "forward input", e.x_shape);
        checks::same_shape("conv2d backward_weights", "dy", dy.shape(), "forward output", e.y_shape);
        check(!dbias || e.has_bias, "conv2d backward_weights: a bias gradient was asked for, but forward had no bias");
        dw.ensure(ctx, w_desc_);
        if (e.small) return e.small->backward_weights(ctx, x, dy, dw);
        if (e.lowered) return e.lowered->backward_weights(ctx, x, dy, dw);
        if (e.s2d) return e.s2d->backward_weights(ctx, x, dy, dw);
        if (!e.bwd_weights) {
            const md db = onednn_detail::plain_md(shape{e.w_shape[0]});
            auto pd = onednn_compat::conv_bwd_weights_pd(
                ctx.engine(), onednn_detail::any_md(e.x_shape, e.type), onednn_detail::any_md(e.w_shape),
                e.has_bias ? &db : nullptr, onednn_detail::any_md(e.y_shape, e.type), strides(), padding(), e.fwd_pd,
                e.algorithm());
            auto unpadded = is_gemm(pd) ? explicitly_padded_pd(ctx, e, e.has_bias ? &db : nullptr) : std::nullopt;
            e.bwd_weights.emplace(unpadded ? std::move(*unpadded) : std::move(pd));
            if (unpadded) {  // the border is zeroed once; the interior is a view for the reorder
                auto& bw = *e.bwd_weights;
                bw.padded = dnnl::memory(bw.pd.src_desc(), ctx.engine());
                std::memset(bw.padded.get_data_handle(), 0, bw.pd.src_desc().get_size());
                const md interior = bw.pd.src_desc().submemory_desc(onednn_detail::to_dims(e.x_shape), {0, 0, p_.pad_h, p_.pad_w});
                bw.padded_interior = dnnl::memory(interior, ctx.engine(), bw.padded.get_data_handle());
            }
        }
        auto& b = *e.bwd_weights;
        if (b.padded) b.pad_in.copy(ctx, x.memory(), b.padded_interior);
        const auto& xm = b.padded ? b.padded : b.x_in.get(ctx, x.memory(), b.pd.src_desc());
        const auto& dym = b.dy_in.get(ctx, dy.memory(), b.pd.diff_dst_desc());
        const auto& dwm = b.dw_out.target(ctx, dw.memory(), b.pd.diff_weights_desc());
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, dwm}};
        if (e.has_bias) {
            if (dbias) dbias->ensure(ctx, b.pd.diff_bias_desc());
            else if (!b.db_scratch) b.db_scratch = dnnl::memory(b.pd.diff_bias_desc(), ctx.engine());
            args.emplace(DNNL_ARG_DIFF_BIAS, dbias ? dbias->memory() : b.db_scratch);
        }
        b.prim.execute(ctx.stream(), args);
        b.dw_out.flush(ctx, dwm, dw.memory());
    }

    /// The name of the implementation oneDNN runs for the weight gradient ("jit:avx2",
    /// "x64:gemm:jit"...), once backward_weights has run.
    std::string weights_gradient_impl() const {
        check(last_ != nullptr && (last_->small || last_->lowered || last_->s2d || last_->bwd_weights),
              "conv2d: weights_gradient_impl before backward_weights");
        if (last_->small) return "small-map matmul";
        if (last_->lowered) return "lowered matmul";
        if (last_->s2d) return "space-to-depth " + last_->s2d->impl();
        return last_->bwd_weights->pd.impl_info_str();
    }

    /// Whether the last forward's gradients run as matrix products over NHWC activations
    /// (onednn_detail::lowered_conv: in bf16 with AMX, in fp32 onto maps of at most 4
    /// positions with AVX-512, and with AVX2 for kernels larger than 1x1; its forward where
    /// forward_pays).
    bool runs_lowered() const { return last_ != nullptr && last_->lowered.has_value(); }
    bool runs_lowered_forward() const { return runs_lowered() && last_->lowered->lowers_forward(); }

    /// Turns the lowered form off (on by default), for comparisons; `without_amx` also takes
    /// it in bf16 on CPUs without AMX (where it was not measured to pay), to compare it there.
    void allow_lowered(bool on, bool without_amx = false) {
        check(cache_.empty(), "conv2d: allow_lowered before the first forward");
        lowered_ = on;
        lowered_anywhere_ = on && without_amx;
    }

    /// Whether the last forward's weight gradient runs space-to-depth
    /// (onednn_detail::space_to_depth_grad: bf16 with AMX, stride 2, at most 4 channels).
    bool runs_space_to_depth() const { return last_ != nullptr && last_->s2d.has_value(); }

    /// Turns the space-to-depth weight gradient off (on by default), or on where AMX is
    /// missing (bf16 only), for comparisons and tests.
    void allow_space_to_depth(bool on, bool without_amx = false) {
        check(cache_.empty(), "conv2d: allow_space_to_depth before the first forward");
        s2d_ = on;
        s2d_anywhere_ = on && without_amx;
    }

    /// Whether the last forward's three passes run oneDNN's Winograd kernels
    /// (winograd_pays; onednn_options::winograd).
    bool runs_winograd() const { return last_ != nullptr && last_->winograd; }

    /// Turns the Winograd form off (on where onednn_options::winograd is), or on where
    /// winograd_pays would not take it (any 3x3 stride-1 shape oneDNN has it for), for
    /// comparisons and tests.
    void allow_winograd(bool on, bool any_map = false) {
        check(cache_.empty(), "conv2d: allow_winograd before the first forward");
        winograd_ = on;
        winograd_any_map_ = on && any_map;
    }

    /// Whether oneDNN's Winograd F(4x4, 3x3) kernels pay for a convolution from `x` onto `y`:
    /// fp32, a 3x3 kernel with stride 1, no bias, at least 32 input and output channels, and
    /// a map of at least 4x4. Winograd does fewer multiplies (36 per 6x6 input tile instead
    /// of 144 for its 4x4 outputs) and its data gradient reads the forward's weight layout;
    /// with few channels its tile transforms dominate, and onto 2x2 maps the matrix-product
    /// forms win. The thresholds are where bench/bench_conv measured the change
    /// (docs/log/performance-2026-12-08.md#winograd-for-fp32-3x3-convolutions-commit-1013fd4).
    /// oneDNN 2.6 has the kernels on AVX-512 CPUs only: elsewhere the direct kernels stay.
    static bool winograd_pays(const ops::conv2d_params& p, const shape& x, const shape& y, bool has_bias) {
        return !has_bias && p.kernel_h == 3 && p.kernel_w == 3 && p.stride_h == 1 && p.stride_w == 1 &&
               std::min(x[1], y[1]) >= 32 && y[2] >= 4 && y[3] >= 4;
    }

    /// Whether the last forward ran as one matrix product (onednn_detail::small_map_conv:
    /// a map no larger than the kernel, no bias).
    bool lowered_to_matmul() const { return last_ != nullptr && last_->small.has_value(); }

    /// Turns the matrix-product form for small maps off (on by default), for comparisons.
    void allow_small_map_matmul(bool on) {
        check(cache_.empty(), "conv2d: allow_small_map_matmul before the first forward");
        small_maps_ = on;
    }

    /// The layout of fp32 weights (and so of their gradient) that the convolution for
    /// inputs like `x` reads without a reorder: the forward primitive's (in mixed precision
    /// the weights are then only converted), or the one the matrix-product forms read
    /// (small_map_conv, lowered_conv).
    md preferred_weights_desc(context_t& ctx, const tensor_t& x, const shape& w_shape, bool has_bias) {
        checks::conv2d(p_, x.shape(), w_shape, nullptr);
        const entry& e = lookup(ctx, x.desc(), w_shape, has_bias);
        if (e.small) return e.small->weights_desc();
        if (e.lowered) return e.lowered->weights_desc();
        return onednn_detail::with_dtype(e.fwd_pd.weights_desc(), dtype::f32);
    }

    /// Moves the weights `w` into preferred_weights_desc for inputs like `x` (values kept,
    /// blocked padding zero). A layer calls it once, at its first forward, so that each
    /// step reads its weights and writes their gradient without reorders; checkpoints and
    /// to_host still see torchvision's OIHW order.
    void adopt_preferred_layout(context_t& ctx, const tensor_t& x, tensor_t& w, bool has_bias) {
        const md want = preferred_weights_desc(ctx, x, w.shape(), has_bias);
        if (w.desc() != want) w = w.to_layout(ctx, want);
    }

    /// The element type the convolution computes in for inputs of type `x` under `ctx`.
    static dtype compute_type(const context_t& ctx, dtype x) {
        return ctx.options().bf16 || x == dtype::bf16 ? dtype::bf16 : dtype::f32;
    }

private:
    struct bwd_data_entry {
        explicit bwd_data_entry(onednn_compat::conv_bwd_data::primitive_desc p) : pd(std::move(p)), prim(pd) {}
        onednn_compat::conv_bwd_data::primitive_desc pd;
        onednn_compat::conv_bwd_data prim;
        onednn_detail::stage dy_in, w_in;
    };
    struct bwd_weights_entry {
        explicit bwd_weights_entry(onednn_compat::conv_bwd_weights::primitive_desc p) : pd(std::move(p)), prim(pd) {}
        onednn_compat::conv_bwd_weights::primitive_desc pd;
        onednn_compat::conv_bwd_weights prim;
        onednn_detail::stage x_in, dy_in, dw_out;
        dnnl::memory db_scratch;
        // Explicit padding: the input copied into the interior of a zero-bordered buffer.
        dnnl::memory padded, padded_interior;
        onednn_detail::stage pad_in;
    };
    struct entry {
        shape x_shape, w_shape, y_shape;
        bool has_bias = false;
        dtype type = dtype::f32;  // of activations and the weights' copy
        onednn_compat::conv_fwd::primitive_desc fwd_pd;
        onednn_compat::conv_fwd fwd;
        onednn_detail::stage x_fwd, w_fwd;
        std::optional<bwd_data_entry> bwd_data;
        std::optional<bwd_weights_entry> bwd_weights;
        std::optional<onednn_detail::small_map_conv> small;
        std::optional<onednn_detail::lowered_conv> lowered;
        std::optional<onednn_detail::space_to_depth_grad> s2d;
        bool winograd = false;  // all three passes run oneDNN's Winograd kernels
        dnnl::algorithm algorithm() const {
            return winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
        }
    };
    struct key {
        md x;
        shape w;
        bool bias;
        dtype type;
        bool operator==(const key& o) const { return x == o.x && w == o.w && bias == o.bias && type == o.type; }
    };

    dnnl::memory::dims strides() const { return {p_.stride_h, p_.stride_w}; }
    dnnl::memory::dims padding() const { return {p_.pad_h, p_.pad_w}; }

    entry& lookup(context_t& ctx, const md& x_desc, const shape& w_shape, bool has_bias) {
        const dtype t = compute_type(ctx, onednn_detail::from_dnnl(x_desc.data_type()));
        return cache_.get(key{x_desc, w_shape, has_bias, t}, [&] {
            entry e;
            e.type = t;
            const auto xd = x_desc.dims();
            e.x_shape = shape(std::span<const std::int64_t>(xd.data(), xd.size()));
            e.w_shape = w_shape;
            e.y_shape = checks::conv2d(p_, e.x_shape, w_shape, nullptr);
            e.has_bias = has_bias;
            const md b = onednn_detail::plain_md(shape{w_shape[0]});
            const md xa = onednn_detail::any_md(e.x_shape, t), wa = onednn_detail::any_md(w_shape, t),
                     ya = onednn_detail::any_md(e.y_shape, t);
            std::optional<onednn_compat::conv_fwd::primitive_desc> wino;
            if (winograd_ && ctx.options().winograd && t == dtype::f32 &&
                (winograd_any_map_ || winograd_pays(p_, e.x_shape, e.y_shape, has_bias)))
                wino = onednn_compat::conv_fwd_pd_if(ctx.engine(), xa, wa, has_bias ? &b : nullptr, ya, wa, strides(),
                                                     padding(), dnnl::algorithm::convolution_winograd);
            e.winograd = wino.has_value();
            e.fwd_pd = wino ? std::move(*wino)
                            : onednn_compat::conv_fwd_pd(ctx.engine(), xa, wa, has_bias ? &b : nullptr, ya, strides(),
                                                         padding());
            e.fwd = onednn_compat::conv_fwd(e.fwd_pd);
            if (e.winograd) return e;
            if (small_maps_ && onednn_detail::small_map_conv::pays(p_, e.x_shape, has_bias))
                e.small.emplace(ctx, p_, e.x_shape, w_shape, e.y_shape, t);
            else if (lowered_ && (t == dtype::bf16 ? onednn_detail::lowered_conv::pays(p_, e.y_shape, has_bias, lowered_anywhere_)
                                                   : onednn_detail::lowered_conv::pays_fp32(p_, e.y_shape, has_bias)))
                e.lowered.emplace(ctx, p_, e.x_shape, w_shape, e.y_shape, t);
            else if (s2d_ && t == dtype::bf16 &&
                     onednn_detail::space_to_depth_grad::pays(p_, e.x_shape, has_bias, s2d_anywhere_))
                e.s2d.emplace(ctx, p_, e.x_shape, w_shape, e.y_shape, t);
            return e;
        });
    }
    static bool is_gemm(const onednn_compat::conv_bwd_weights::primitive_desc& pd) {
        return std::string_view(pd.impl_info_str()).find("gemm") != std::string_view::npos;
    }

    // oneDNN 2.6 has no JIT weight gradient on AVX2 for some padded convolutions (ResNet's
    // 3x3 convolutions on 2x2 maps, where the padding is as wide as the map) and falls back
    // to a GEMM per image, much slower than its JIT kernel. The same gradient is that
    // of the unpadded convolution over the input with a zero border: when oneDNN has a JIT
    // kernel for that one, backward_weights copies the input into a zero-bordered buffer
    // and runs it.
    std::optional<onednn_compat::conv_bwd_weights::primitive_desc> explicitly_padded_pd(context_t& ctx, const entry& e,
                                                                                         const md* db) {
        if (p_.pad_h == 0 && p_.pad_w == 0) return std::nullopt;
        shape xp = e.x_shape;
        xp[2] += 2 * p_.pad_h;
        xp[3] += 2 * p_.pad_w;
        const dnnl::memory::dims none{0, 0};
        const auto x = onednn_detail::any_md(xp, e.type), w = onednn_detail::any_md(e.w_shape),
                   y = onednn_detail::any_md(e.y_shape, e.type);
        const auto hint = onednn_compat::conv_fwd_pd(ctx.engine(), x, onednn_detail::any_md(e.w_shape, e.type), db, y, strides(), none);
        auto pd = onednn_compat::conv_bwd_weights_pd(ctx.engine(), x, w, db, y, strides(), none, hint);
        if (is_gemm(pd) || std::string_view(pd.impl_info_str()).starts_with("ref")) return std::nullopt;
        return pd;
    }

    entry& current(const char* what) {
        check(last_ != nullptr, "conv2d: ", what, " called before forward");
        return *last_;
    }

    conv2d_params p_;
    onednn_detail::shape_cache<key, entry> cache_;
    entry* last_ = nullptr;
    md w_desc_;
    bool small_maps_ = true;
    bool lowered_ = true, lowered_anywhere_ = false;
    bool s2d_ = true, s2d_anywhere_ = false;
    bool winograd_ = true, winograd_any_map_ = false;
};

}  // namespace micle::ops
