#pragma once
// Small [N, D] matrices in plain row-major layout for host code on the oneDNN backend: the
// row-wise ops and losses oneDNN 2.6 has no primitive for run on them with Eigen, on the
// host memory oneDNN's CPU engine uses.
#include <Eigen/Core>

#include "micle/backend/onednn/tensor.hpp"

namespace micle::onednn_detail::rows {
using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using map = Eigen::Map<matrix>;
using cmap = Eigen::Map<const matrix>;

/// A plain view of `t` for host code: `t` itself when plain, else a reorder into `buf`.
inline const float* plain_rows(context<onednn>& ctx, const tensor<onednn>& t, onednn_detail::stage& buf) {
    const auto& m = buf.get(ctx, t.memory(), onednn_detail::plain_md(t.shape()));
    ctx.synchronize();
    return static_cast<const float*>(m.get_data_handle());
}
}  // namespace micle::onednn_detail::rows
