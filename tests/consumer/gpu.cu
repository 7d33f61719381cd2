// Built against the installed micle package as a CUDA translation unit: runs one
// convolution on the GPU backend and checks it against the reference backend; without a
// CUDA device it says so (ctest reports the test skipped).
#include <micle/micle.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int main() {
    if (const std::string why = micle::cudnn_detail::no_device_reason(); !why.empty()) {
        std::printf("micle consumer gpu: built, skipped: %s\n", why.c_str());
        return 0;
    }
    using B = micle::cudnn;
    micle::cudnn_options o;
    o.allow_tf32 = false;
    micle::context<B> ctx(o);
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
            std::printf("micle consumer gpu: mismatch at %zu: %g vs %g\n", i, double(a[i]), double(b[i]));
            return 1;
        }
    std::printf("micle consumer gpu: ok (%s)\n", ctx.description().c_str());
    return 0;
}
