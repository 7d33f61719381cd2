// FMA throughput of this machine: the fp32 peak that docs/performance.md quotes figures
// against. Each thread runs 12 independent chains of vector FMAs (enough to cover the FMA
// latency on current x86 cores), compiled for the native vector width.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int lanes = 16;
#elif defined(__AVX__)
constexpr int lanes = 8;
#else
constexpr int lanes = 4;
#endif
typedef float vec __attribute__((vector_size(lanes * sizeof(float))));
constexpr int chains = 12;

// Returns a value depending on every chain so nothing is optimised away.
__attribute__((noinline)) float fma_loop(std::int64_t iters, float seed) {
    vec acc[chains];
    for (int c = 0; c < chains; ++c)
        for (int l = 0; l < lanes; ++l) acc[c][l] = seed + float(c + l);
    vec a, b;
    for (int l = 0; l < lanes; ++l) {
        a[l] = 0.999999f;
        b[l] = 1e-7f;
    }
    for (std::int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int c = 0; c < chains; ++c) acc[c] = acc[c] * a + b;
    }
    float s = 0;
    for (int c = 0; c < chains; ++c)
        for (int l = 0; l < lanes; ++l) s += acc[c][l];
    return s;
}

constexpr std::int64_t iters_per_run = 1 << 22;
constexpr double flops_per_run = double(iters_per_run) * chains * lanes * 2;

void BM_fma_peak(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    for (auto _ : state) {
        std::vector<std::thread> pool;
        std::vector<float> out(static_cast<std::size_t>(threads));
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] { out[static_cast<std::size_t>(t)] = fma_loop(iters_per_run, float(t)); });
        for (auto& th : pool) th.join();
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops_per_run * threads * double(state.iterations()), benchmark::Counter::kIsRate,
                           benchmark::Counter::kIs1000);
    state.counters["lanes"] = lanes;
}

}  // namespace

BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
