// The test suite's main: doctest's, plus `micle_tests --onednn-isa`, which prints the
// instruction set oneDNN runs on this CPU (after DNNL_MAX_CPU_ISA) for tests/onednn_isa.sh.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

#include "micle/config.hpp"
#if MICLE_HAS_ONEDNN
#include "micle/backend/onednn/tensor.hpp"
#endif

int main(int argc, char** argv) {
    if (argc == 2 && !std::strcmp(argv[1], "--onednn-isa")) {
#if MICLE_HAS_ONEDNN
        std::puts(micle::onednn_detail::isa_name(dnnl::get_effective_cpu_isa()));
        return 0;
#else
        std::puts("none: built without oneDNN");
        return 1;
#endif
    }
    doctest::Context context(argc, argv);
    return context.run();
}
