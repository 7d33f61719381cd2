// Built against the installed micle package: runs one convolution on the default backend
// and checks it against the reference backend.
#include <string>

#include "conv_check.hpp"

int main() try {
    using B = micle::default_backend;
    micle::context<B> ctx;
    if (!conv_matches_reference(ctx, "micle consumer")) return 1;
    std::printf("micle consumer: ok (backend %s, micle %s)\n", std::string(B::name).c_str(), MICLE_VERSION_STRING);
    return 0;
} catch (const micle::backend_error& e) {  // a GPU default on a machine without a GPU
    if (std::string(e.what()).find("no CUDA device") == std::string::npos) throw;
    std::printf("micle consumer: built, skipped: %s\n", e.what());
    return 0;
}
