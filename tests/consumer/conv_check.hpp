#pragma once
// One convolution on backend B against the reference backend, for the consumer programs.
#include <micle/micle.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

/// Prints the first mismatch under `label` and returns false, or returns true.
template <class B>
bool conv_matches_reference(micle::context<B>& ctx, const char* label) {
    micle::context<micle::reference> rctx;
    std::vector<float> x(2 * 3 * 5 * 5), w(4 * 3 * 3 * 3);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.1f * float(i));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.2f * float(i));
    const micle::ops::conv2d_params p{3, 3, 1, 1, 1, 1};
    micle::tensor<B> y;
    micle::ops::conv2d<B>(p).forward(ctx, micle::tensor<B>::from_host(ctx, {2, 3, 5, 5}, x),
                                     micle::tensor<B>::from_host(ctx, {4, 3, 3, 3}, w), nullptr, y);
    micle::tensor<micle::reference> yr;
    micle::ops::conv2d<micle::reference>(p).forward(rctx, micle::tensor<micle::reference>::from_host(rctx, {2, 3, 5, 5}, x),
                                                    micle::tensor<micle::reference>::from_host(rctx, {4, 3, 3, 3}, w),
                                                    nullptr, yr);
    const auto a = y.to_host(ctx), b = yr.to_host(rctx);
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::abs(a[i] - b[i]) > 1e-4f * (1.0f + std::abs(b[i]))) {
            std::printf("%s: mismatch at %zu: %g vs %g\n", label, i, double(a[i]), double(b[i]));
            return false;
        }
    return true;
}
