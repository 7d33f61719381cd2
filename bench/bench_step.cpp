// One whole SimCLR training step on the oneDNN backend: both views through a ResNet and a
// SimCLR v1 projection head (hidden = feature width, 128 out), NT-Xent (temperature 0.1),
// backward, and an SGD update (momentum 0.9) - the step bench/pytorch_step.py times in
// PyTorch. Benchmark names read: step/<arch>_<stem>/<resolution>/<N>x2, and .../bf16 for
// bf16 mixed precision (onednn_options::bf16; an error row on CPUs without AVX512-BF16).
//
// Counters: img/s counts both views (2N images per step); GFLOP/s counts the
// convolutions and linear layers as 3x the forward multiply-adds (forward, backward data,
// backward weights); peak_frac is that over this machine's fp32 FMA peak measured at
// start-up (bench_fma's kernel, 2 threads) - for fp32 rows only; bf16 rows give 0 there.
#include <benchmark/benchmark.h>

#include <micle/micle.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fma_peak.hpp"
#include "simclr_step.hpp"

namespace {

using B = micle::onednn;
using learner = micle::bench::simclr_step_learner<B>;

double peak_gflops() {
    static const double peak = micle::bench::fma_peak_gflops(int(std::thread::hardware_concurrency()));
    return peak;
}

void BM_step(benchmark::State& state, int depth, micle::models::stem_kind stem, std::int64_t res, std::int64_t n,
             bool bf16 = false) {
    if (bf16 && !micle::onednn_detail::cpu_has_bf16()) {
        state.SkipWithError("bf16 needs a CPU with AVX512-BF16 or AMX");
        for (auto _ : state) {
        }
        return;
    }
    // The peak is measured once, here on the first row, before oneDNN has started its
    // OpenMP threads: measured later (it once was, at the end of the first row) the FMA
    // loop can share the cores with threads still spinning after a primitive, and a low
    // peak inflates peak_frac (134 instead of 194 GFLOP/s on a 2-vCPU EPYC).
    const double peak = peak_gflops();
    micle::onednn_options opts;
    opts.bf16 = bf16;
    micle::context<B> ctx(opts);
    state.SetLabel(ctx.description());
    const auto cfg = micle::bench::simclr_step_config<B>(depth, stem);
    learner l(ctx, cfg);
    const auto pixels = micle::bench::simclr_step_views(n, res);
    const auto views = micle::tensor<B>::from_host(ctx, {2 * n, 3, res, res}, pixels);
    l.step(views, 0.01f);  // first step builds primitives and buffers
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) benchmark::DoNotOptimize(l.step(views, 0.01f));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 3.0 * double(cfg.backbone.forward_flops(res, res)) * double(2 * n);
    const double steps = double(state.iterations());
    state.counters["img/s"] = steps * double(2 * n) / secs;
    state.counters["GFLOP/s"] = steps * flops / secs / 1e9;
    state.counters["peak_frac"] = bf16 ? 0.0 : steps * flops / secs / 1e9 / peak;
}

using micle::models::stem_kind;
BENCHMARK_CAPTURE(BM_step, resnet18_imagenet/64/64x2, 18, stem_kind::imagenet, 64, 64)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(BM_step, resnet50_imagenet/64/32x2, 50, stem_kind::imagenet, 64, 32)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(BM_step, resnet18_small/32/128x2, 18, stem_kind::small, 32, 128)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(BM_step, resnet18_imagenet/64/64x2/bf16, 18, stem_kind::imagenet, 64, 64, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(BM_step, resnet50_imagenet/64/32x2/bf16, 50, stem_kind::imagenet, 64, 32, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK_CAPTURE(BM_step, resnet18_small/32/128x2/bf16, 18, stem_kind::small, 32, 128, true)
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
