// `micle info`: the version, the backend this trainer runs on and its device.
#include "common.hpp"

namespace micle::cli {

const char* info_usage =
    "usage: micle info\n"
    "Prints micle's version and what this trainer computes on (backend, device). Exits 1\n"
    "with the reason when that backend cannot start (micle-gpu without a CUDA device).\n";

int info(int argc, char** argv) {
    const options o(argc, argv, 2, with_backend_options({}), {});
    if (o.help()) {
        std::printf("%s%s", info_usage, backend_usage);
        return 0;
    }
    context<backend> ctx = make_context(o);
    std::printf("micle %s\nbackend: %s\nranks: %d of %d (%s)\n", MICLE_VERSION_STRING, describe(ctx).c_str(), world().rank(),
                world().size(), world().description().c_str());
    return 0;
}

}  // namespace micle::cli
