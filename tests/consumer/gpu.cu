// Built against the installed micle package as a CUDA translation unit: runs one
// convolution on the GPU backend and checks it against the reference backend; without a
// CUDA device it says so (ctest reports the test skipped).
#include <string>

#include "conv_check.hpp"

int main() {
    if (const std::string why = micle::cudnn_detail::no_device_reason(); !why.empty()) {
        std::printf("micle consumer gpu: built, skipped: %s\n", why.c_str());
        return 0;
    }
    micle::cudnn_options o;
    o.allow_tf32 = false;  // the check's tolerance is fp32's
    micle::context<micle::cudnn> ctx(o);
    if (!conv_matches_reference(ctx, "micle consumer gpu")) return 1;
    std::printf("micle consumer gpu: ok (%s)\n", ctx.description().c_str());
    return 0;
}
