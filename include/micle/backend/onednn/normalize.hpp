#pragma once
// L2 normalisation of rows on the oneDNN backend (SimCLR's projections before NT-Xent):
// Eigen over plain rows (oneDNN 2.6 has no row-normalisation primitive).
#include <Eigen/Core>

#include "micle/backend/onednn/rows.hpp"
#include "micle/backend/onednn/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class l2_normalize<onednn> {
public:
    using tensor_t = tensor<onednn>;
    using context_t = context<onednn>;

    explicit l2_normalize(l2_normalize_params p = {}) : p_(p) {}

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        using namespace onednn_detail::rows;
        checks::f32("l2_normalize", "input", x.dtype());
        checks::rows("l2_normalize", x.shape());
        const auto N = x.shape()[0], D = x.shape()[1];
        cmap xm(plain_rows(ctx, x, x_in_), N, D);
        norms_ = xm.rowwise().norm();
        const Eigen::VectorXf inv = norms_.cwiseMax(p_.eps).cwiseInverse();
        y_.resize(N, D);
        y_.noalias() = inv.asDiagonal() * xm;
        y.ensure(ctx, onednn_detail::plain_md(x.shape()));
        map(y.data(), N, D) = y_;
    }

    void backward(context_t& ctx, const tensor_t& dy, tensor_t& dx) {
        using namespace onednn_detail::rows;
        check(y_.size() > 0, "l2_normalize: backward called before forward");
        checks::same_shape("l2_normalize backward", "dy", dy.shape(), "forward output", shape{y_.rows(), y_.cols()});
        cmap g(plain_rows(ctx, dy, dy_in_), y_.rows(), y_.cols());
        // dx = (dy - y <y, dy>) / max(norm, eps); below eps the op is linear (x / eps).
        Eigen::VectorXf dot = (y_.array() * g.array()).rowwise().sum().matrix();
        dot = (norms_.array() > p_.eps).select(dot, 0.0f);
        const Eigen::VectorXf inv = norms_.cwiseMax(p_.eps).cwiseInverse();
        dx.ensure(ctx, onednn_detail::plain_md(dy.shape()));
        map(dx.data(), y_.rows(), y_.cols()).noalias() = inv.asDiagonal() * (g - dot.asDiagonal() * y_);
    }

private:
    l2_normalize_params p_;
    Eigen::VectorXf norms_;
    onednn_detail::rows::matrix y_;
    onednn_detail::stage x_in_, dy_in_;
};

}  // namespace micle::ops
