// FMA throughput of this machine: the fp32 peak that docs/performance.md quotes figures
// against (see fma_peak.cpp for the kernel).
#include <benchmark/benchmark.h>

#include "fma_peak.hpp"

namespace {
void BM_fma_peak(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    double gflops = 0;
    for (auto _ : state) gflops = micle::bench::fma_peak_gflops(threads, 1 << 22);
    state.counters["GFLOP/s"] = gflops;
    state.counters["lanes"] = micle::bench::fma_vector_lanes();
}
}  // namespace

BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_MAIN();
