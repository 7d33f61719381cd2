#pragma once
// This machine's fp32 FMA peak, measured: `threads` threads each run 12 independent chains
// of FMAs on the widest vectors the build machine has (fma_peak.cpp is compiled with
// -march=native). Returns GFLOP/s of all threads together.
#include <cstdint>

namespace micle::bench {
double fma_peak_gflops(int threads, std::int64_t iterations = 1 << 22);
int fma_vector_lanes();
}  // namespace micle::bench
