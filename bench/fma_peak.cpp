#include "fma_peak.hpp"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace micle::bench {
namespace {

#if defined(__AVX512F__)
constexpr int lanes = 16;
#elif defined(__AVX__)
constexpr int lanes = 8;
#else
constexpr int lanes = 4;
#endif
typedef float vec __attribute__((vector_size(lanes * sizeof(float))));
constexpr int chains = 12;  // covers the FMA latency x throughput of current x86 cores

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

}  // namespace

int fma_vector_lanes() { return lanes; }

double fma_peak_gflops(int threads, std::int64_t iterations) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {  // the best of 5: the peak is an upper bound
        std::vector<std::thread> pool;
        std::vector<float> sink(static_cast<std::size_t>(threads));
        const auto t0 = std::chrono::steady_clock::now();
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] { sink[static_cast<std::size_t>(t)] = fma_loop(iterations, float(t)); });
        for (auto& th : pool) th.join();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        volatile float keep = sink[0];
        (void)keep;
        best = std::max(best, double(iterations) * chains * lanes * 2.0 * threads / secs / 1e9);
    }
    return best;
}

}  // namespace micle::bench
