#pragma once
#include <Eigen/Core>

#include <algorithm>
#include <optional>
#include <span>
#include <unordered_map>

#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

/// Batch normalisation on oneDNN's batch_normalization primitives, in the layout of its
/// input (blocked activations stay blocked). Scale and shift are separate [C] tensors
/// (use_scale | use_shift); the fused ReLU uses oneDNN's fuse_norm_relu and its workspace.
/// oneDNN reports the biased batch variance; the running variance is updated with the
/// unbiased one, as PyTorch does. A bf16 input (mixed precision) gives a bf16 output and
/// gradient; statistics, scale, shift and their gradients stay fp32.
template <>
class batch_norm<onednn> {
    using md = dnnl::memory::desc;

public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit batch_norm(batch_norm_params p = {}) : p_(p) {}
    const batch_norm_params& params() const noexcept { return p_; }

    void forward_training(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                          tensor_t& running_mean, tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, true);
        entry& e = cache_.get(x.desc(), [] { return entry{}; });
        if (!e.train) {  // built on first use (inference may have created the entry)
            e.train_pd = onednn_compat::bn_fwd_pd(ctx.engine(), true, x.desc(), p_.eps, flags(false));
            e.train = onednn_compat::bn_fwd(e.train_pd);
            e.mean = dnnl::memory(e.train_pd.mean_desc(), ctx.engine());
            e.var = dnnl::memory(e.train_pd.variance_desc(), ctx.engine());
            if (p_.fuse_relu) e.workspace = dnnl::memory(e.train_pd.workspace_desc(), ctx.engine());
        }
        y.ensure(ctx, e.train_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, x.memory()},     {DNNL_ARG_SCALE, gamma.memory()},
                                                   {DNNL_ARG_SHIFT, beta.memory()}, {DNNL_ARG_DST, y.memory()},
                                                   {DNNL_ARG_MEAN, e.mean},         {DNNL_ARG_VARIANCE, e.var}};
        if (p_.fuse_relu) args.emplace(DNNL_ARG_WORKSPACE, e.workspace);
        e.train.execute(ctx.stream(), args);
        ctx.synchronize();

        const auto C = x.shape()[1];
        const double M = double(x.numel() / C);
        using vec = Eigen::Map<Eigen::ArrayXf>;
        vec rm(running_mean.data(), C), rv(running_var.data(), C);
        vec mean(static_cast<float*>(e.mean.get_data_handle()), C), var(static_cast<float*>(e.var.get_data_handle()), C);
        const float m = p_.momentum;
        rm = (1.0f - m) * rm + m * mean;
        rv = (1.0f - m) * rv + (m * static_cast<float>(M / (M - 1.0))) * var;
        last_ = &e;
        last_x_ = x.desc();
    }

    void forward_inference(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                           const tensor_t& running_mean, const tensor_t& running_var, tensor_t& y) {
        validate(x, gamma, beta, running_mean, running_var, false);
        entry& e = cache_.get(x.desc(), [] { return entry{}; });
        if (!e.infer) {
            e.infer_pd = onednn_compat::bn_fwd_pd(ctx.engine(), false, x.desc(), p_.eps, flags(true));
            e.infer = onednn_compat::bn_fwd(e.infer_pd);
        }
        y.ensure(ctx, e.infer_pd.dst_desc());
        e.infer.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()},
                                       {DNNL_ARG_SCALE, gamma.memory()},
                                       {DNNL_ARG_SHIFT, beta.memory()},
                                       {DNNL_ARG_MEAN, running_mean.memory()},
                                       {DNNL_ARG_VARIANCE, running_var.memory()},
                                       {DNNL_ARG_DST, y.memory()}});
        last_ = nullptr;
    }

    void backward(context_t& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma, const tensor_t& beta,
                  tensor_t& dx, tensor_t& dgamma, tensor_t& dbeta) {
        check(last_ != nullptr && last_x_ == x.desc(),
              "batch_norm: backward needs a forward_training on the same input first (input ", x.shape(), ")");
        checks::same_shape("batch_norm backward", "dy", dy.shape(), "input", x.shape());
        entry& e = *last_;
        if (!e.bwd) {
            e.bwd_pd = onednn_compat::bn_bwd_pd(ctx.engine(), x.desc(), p_.eps, flags(false), e.train_pd);
            e.bwd = onednn_compat::bn_bwd(e.bwd_pd);
        }
        run_backward(ctx, e.bwd, e.bwd_pd, e.dy_in, x, dy, gamma, beta, e.mean, e.var, e.workspace, dx, dgamma, dbeta);
    }

    // ---- Statistics from elsewhere: the parts nn::cross_replica_batch_norm assembles
    // into batch norm over the global batch of every rank, each a oneDNN primitive on this
    // rank's input in its own layout.

    /// This input's per-channel mean and biased variance, C values each.
    void local_statistics(context_t& ctx, const tensor_t& x, std::span<float> mean, std::span<float> var) {
        const auto C = std::size_t(x.shape()[1]);
        check(mean.size() == C && var.size() == C, "batch_norm: statistics of ", C, " channels into ", mean.size(), " and ",
              var.size(), " values");
        given& g = given_for(ctx, x);
        if (!g.stats) {
            g.stats_pd = onednn_compat::bn_fwd_pd(ctx.engine(), true, x.desc(), p_.eps, onednn_compat::bn_flags::none);
            g.stats = onednn_compat::bn_fwd(g.stats_pd);
            g.stats_dst = dnnl::memory(g.stats_pd.dst_desc(), ctx.engine());
            g.stats_mean = dnnl::memory(g.stats_pd.mean_desc(), ctx.engine());
            g.stats_var = dnnl::memory(g.stats_pd.variance_desc(), ctx.engine());
        }
        g.stats.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()},
                                       {DNNL_ARG_DST, g.stats_dst},
                                       {DNNL_ARG_MEAN, g.stats_mean},
                                       {DNNL_ARG_VARIANCE, g.stats_var}});
        ctx.synchronize();
        std::copy_n(static_cast<const float*>(g.stats_mean.get_data_handle()), C, mean.begin());
        std::copy_n(static_cast<const float*>(g.stats_var.get_data_handle()), C, var.begin());
    }

    /// Training forward normalising with `mean` and `var` ([C], plain; the global batch's)
    /// instead of this input's: y, and the fused ReLU's mask for backward_with_statistics.
    void forward_with_statistics(context_t& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                 const tensor_t& mean, const tensor_t& var, tensor_t& y) {
        given& g = given_for(ctx, x);
        if (!g.fwd) {
            g.fwd_pd = onednn_compat::bn_fwd_pd(ctx.engine(), true, x.desc(), p_.eps,
                                                flags(false) | onednn_compat::bn_global_stats());
            g.fwd = onednn_compat::bn_fwd(g.fwd_pd);
            if (p_.fuse_relu) g.workspace = dnnl::memory(g.fwd_pd.workspace_desc(), ctx.engine());
        }
        y.ensure(ctx, g.fwd_pd.dst_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, x.memory()},      {DNNL_ARG_SCALE, gamma.memory()},
                                                   {DNNL_ARG_SHIFT, beta.memory()},  {DNNL_ARG_DST, y.memory()},
                                                   {DNNL_ARG_MEAN, mean.memory()},   {DNNL_ARG_VARIANCE, var.memory()}};
        if (p_.fuse_relu) args.emplace(DNNL_ARG_WORKSPACE, g.workspace);
        g.fwd.execute(ctx.stream(), args);
        given_x_ = x.desc();
    }

    /// Backward holding `mean` and `var` fixed: dx = gamma / sqrt(var + eps) x dy (dy masked
    /// by the fused ReLU), dgamma = sum of dy x_hat, dbeta = sum of dy, over this input.
    void backward_with_statistics(context_t& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                  const tensor_t& beta, const tensor_t& mean, const tensor_t& var, tensor_t& dx,
                                  tensor_t& dgamma, tensor_t& dbeta) {
        check(given_x_ == x.desc(), "batch_norm: backward_with_statistics needs forward_with_statistics on the same input first (input ", x.shape(),
              ")");
        checks::same_shape("batch_norm backward", "dy", dy.shape(), "input", x.shape());
        given& g = given_for(ctx, x);
        if (!g.bwd) {
            g.bwd_pd = onednn_compat::bn_bwd_pd(ctx.engine(), x.desc(), p_.eps, flags(false) | onednn_compat::bn_global_stats(),
                                                g.fwd_pd);
            g.bwd = onednn_compat::bn_bwd(g.bwd_pd);
        }
        run_backward(ctx, g.bwd, g.bwd_pd, g.dy_in, x, dy, gamma, beta, mean.memory(), var.memory(), g.workspace, dx, dgamma, dbeta);
    }

    /// dx -= a + b x, channel by channel (a, b: [C], plain), x and dx in x's layout: a batch
    /// norm forward in inference mode with mean 0, variance 1 - eps, scale b and shift a
    /// computes a + b x, and a binary subtraction takes it off.
    void subtract_affine(context_t& ctx, const tensor_t& x, const tensor_t& a, const tensor_t& b, tensor_t& dx) {
        check(dx.desc() == x.desc(), "batch_norm: subtract_affine needs dx in the layout of x (", x.shape(), ")");
        given& g = given_for(ctx, x);
        if (!g.affine) {
            g.affine_pd = onednn_compat::bn_fwd_pd(ctx.engine(), false, x.desc(), p_.eps,
                                                   onednn_compat::bn_scale_shift() | onednn_compat::bn_global_stats());
            g.affine = onednn_compat::bn_fwd(g.affine_pd);
            g.affine_out = dnnl::memory(g.affine_pd.dst_desc(), ctx.engine());
            const auto C = std::size_t(x.shape()[1]);
            g.zero_mean = dnnl::memory(g.affine_pd.mean_desc(), ctx.engine());
            g.unit_var = dnnl::memory(g.affine_pd.variance_desc(), ctx.engine());
            std::fill_n(static_cast<float*>(g.zero_mean.get_data_handle()), C, 0.0f);
            std::fill_n(static_cast<float*>(g.unit_var.get_data_handle()), C, 1.0f - p_.eps);
            g.sub = dnnl::binary(onednn_compat::sub_pd(ctx.engine(), x.desc(), x.desc(), x.desc()));
        }
        g.affine.execute(ctx.stream(), {{DNNL_ARG_SRC, x.memory()},
                                        {DNNL_ARG_SCALE, b.memory()},
                                        {DNNL_ARG_SHIFT, a.memory()},
                                        {DNNL_ARG_MEAN, g.zero_mean},
                                        {DNNL_ARG_VARIANCE, g.unit_var},
                                        {DNNL_ARG_DST, g.affine_out}});
        g.sub.execute(ctx.stream(), {{DNNL_ARG_SRC_0, dx.memory()}, {DNNL_ARG_SRC_1, g.affine_out}, {DNNL_ARG_DST, dx.memory()}});
    }

private:
    /// Backward with the given statistics (this input's from forward_training, or the
    /// global ones) and the fused ReLU's workspace.
    void run_backward(context_t& ctx, onednn_compat::bn_bwd& prim, const onednn_compat::bn_bwd::primitive_desc& pd,
                      onednn_detail::stage& dy_in, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                      const tensor_t& beta, const dnnl::memory& mean, const dnnl::memory& var, const dnnl::memory& workspace,
                      tensor_t& dx, tensor_t& dgamma, tensor_t& dbeta) {
        const auto& dym = dy_in.get(ctx, dy.memory(), pd.diff_dst_desc());
        const shape cs{x.shape()[1]};
        dx.ensure(ctx, pd.diff_src_desc());
        dgamma.ensure(ctx, onednn_detail::plain_md(cs));
        dbeta.ensure(ctx, onednn_detail::plain_md(cs));
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, x.memory()},       {DNNL_ARG_MEAN, mean},           {DNNL_ARG_VARIANCE, var},
            {DNNL_ARG_DIFF_DST, dym},         {DNNL_ARG_SCALE, gamma.memory()}, {DNNL_ARG_SHIFT, beta.memory()},
            {DNNL_ARG_DIFF_SRC, dx.memory()}, {DNNL_ARG_DIFF_SCALE, dgamma.memory()}, {DNNL_ARG_DIFF_SHIFT, dbeta.memory()}};
        if (p_.fuse_relu) args.emplace(DNNL_ARG_WORKSPACE, workspace);
        prim.execute(ctx.stream(), args);
    }

    struct given {  // the primitives of the statistics-from-elsewhere path, per input layout
        onednn_compat::bn_fwd::primitive_desc stats_pd, fwd_pd, affine_pd;
        onednn_compat::bn_fwd stats, fwd, affine;
        onednn_compat::bn_bwd::primitive_desc bwd_pd;
        onednn_compat::bn_bwd bwd;
        dnnl::memory stats_dst, stats_mean, stats_var, workspace, affine_out, zero_mean, unit_var;
        dnnl::binary sub;
        onednn_detail::stage dy_in;
    };
    given& given_for(context_t&, const tensor_t& x) {
        return given_cache_.get(x.desc(), [] { return given{}; });
    }

    struct entry {
        onednn_compat::bn_fwd::primitive_desc train_pd, infer_pd;
        onednn_compat::bn_fwd train, infer;
        onednn_compat::bn_bwd::primitive_desc bwd_pd;
        onednn_compat::bn_bwd bwd;
        dnnl::memory mean, var, workspace;
        onednn_detail::stage dy_in;
    };

    onednn_compat::bn_flags flags(bool inference) const {
        auto f = onednn_compat::bn_scale_shift();
        if (p_.fuse_relu) f = f | onednn_compat::bn_fuse_relu();
        if (inference) f = f | onednn_compat::bn_global_stats();
        return f;
    }

    void validate(const tensor_t& x, const tensor_t& g, const tensor_t& b, const tensor_t& rm, const tensor_t& rv,
                  bool training) const {
        checks::batch_norm(x.shape(), training, {&g.shape(), &b.shape(), &rm.shape(), &rv.shape()});
        for (const tensor_t* t : {&g, &b, &rm, &rv})
            check(t->dtype() == dtype::f32 && t->is_plain(), "batch_norm: per-channel tensors must be plain f32");
    }

    batch_norm_params p_;
    onednn_detail::shape_cache<md, entry> cache_;
    entry* last_ = nullptr;
    md last_x_;
    onednn_detail::shape_cache<md, given> given_cache_;
    md given_x_;
};

}  // namespace micle::ops
