#pragma once
// L2 normalisation of rows on the reference backend (SimCLR's projections before NT-Xent).
#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "micle/backend/reference/tensor.hpp"
#include "micle/core/ops.hpp"

namespace micle::ops {

template <>
class l2_normalize<reference> {
public:
    using tensor_t = tensor<reference>;
    using context_t = context<reference>;

    explicit l2_normalize(l2_normalize_params p = {}) : p_(p) {}

    void forward(context_t& ctx, const tensor_t& x, tensor_t& y) {
        checks::f32("l2_normalize", "input", x.dtype());
        checks::rows("l2_normalize", x.shape());
        const auto N = x.shape()[0], D = x.shape()[1];
        y.ensure(x.shape());
        norms_.resize(static_cast<std::size_t>(N));
        for (std::int64_t n = 0; n < N; ++n) {
            double s = 0;
            for (std::int64_t d = 0; d < D; ++d) s += double(x.data()[n * D + d]) * x.data()[n * D + d];
            const double norm = std::sqrt(s), denom = std::max(norm, double(p_.eps));
            norms_[static_cast<std::size_t>(n)] = norm;
            for (std::int64_t d = 0; d < D; ++d) y.data()[n * D + d] = static_cast<float>(x.data()[n * D + d] / denom);
        }
        y_ = y.clone(ctx);
    }

    void backward(context_t&, const tensor_t& dy, tensor_t& dx) {
        check(y_.defined(), "l2_normalize: backward called before forward");
        checks::same_shape("l2_normalize backward", "dy", dy.shape(), "forward output", y_.shape());
        const auto N = dy.shape()[0], D = dy.shape()[1];
        dx.ensure(dy.shape());
        for (std::int64_t n = 0; n < N; ++n) {
            const double norm = norms_[static_cast<std::size_t>(n)];
            double dot = 0;
            for (std::int64_t d = 0; d < D; ++d) dot += double(y_.data()[n * D + d]) * dy.data()[n * D + d];
            // Below eps the op is x / eps, a linear map: its gradient is dy / eps.
            if (norm <= p_.eps) dot = 0;
            const double denom = std::max(norm, double(p_.eps));
            for (std::int64_t d = 0; d < D; ++d)
                dx.data()[n * D + d] = static_cast<float>((dy.data()[n * D + d] - y_.data()[n * D + d] * dot) / denom);
        }
    }

private:
    l2_normalize_params p_;
    std::vector<double> norms_;
    tensor_t y_;
};

}  // namespace micle::ops
