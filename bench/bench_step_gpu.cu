// One whole SimCLR training step on the GPU backend (cuDNN/cuBLAS): the step of
// bench_step.cpp - both views through a ResNet and a SimCLR v1 projection head, NT-Xent
// (temperature 0.1), backward, an SGD update (momentum 0.9) - at the sizes of the
// paper's setting. bench/pytorch_step.py --device cuda times the same step in PyTorch;
// bench/compare_pytorch.py --gpu runs both in one command. Names read:
// BM_step_gpu/<arch>_<stem>/<resolution>/<N>x2/<precision>.
//
// Counters: img/s counts both views (2N images per step); TFLOP/s counts convolutions and
// linear layers as 3x the forward multiply-adds. Without a CUDA device every benchmark
// reports the reason and is skipped.
#include <benchmark/benchmark.h>

#include <micle/micle.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "simclr_step.hpp"

namespace {

using B = micle::cudnn;
using learner = micle::bench::simclr_step_learner<B>;

enum class precision { tf32, fp32, bf16 };

void BM_step_gpu(benchmark::State& state, int depth, micle::models::stem_kind stem, std::int64_t res, std::int64_t n,
                 precision p, bool find) {
    if (const auto why = micle::cudnn_detail::no_device_reason(); !why.empty()) {
        state.SkipWithError(why.c_str());
        for (auto _ : state) {
        }
        return;
    }
    micle::cudnn_options opts;
    opts.allow_tf32 = p != precision::fp32;
    opts.bf16 = p == precision::bf16;
    opts.deterministic = false;  // as PyTorch's default: the fastest algorithm cuDNN suggests
    opts.find_algorithms = find;  // the ".../find" rows: measured choice (PyTorch's cudnn.benchmark = True)
    micle::context<B> ctx(opts);
    const auto cfg = micle::bench::simclr_step_config<B>(depth, stem);
    learner l(ctx, cfg);
    const auto pixels = micle::bench::simclr_step_views(n, res);
    const auto views = micle::tensor<B>::from_host(ctx, {2 * n, 3, res, res}, pixels);
    l.step(views, 0.01f);  // first step: algorithm choice, workspace, allocator warm-up
    l.step(views, 0.01f);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) benchmark::DoNotOptimize(l.step(views, 0.01f));  // step() waits for the loss
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 3.0 * double(cfg.backbone.forward_flops(res, res)) * double(2 * n);
    const double steps = double(state.iterations());
    state.counters["img/s"] = steps * double(2 * n) / secs;
    state.counters["TFLOP/s"] = steps * flops / secs / 1e12;
    state.SetLabel(ctx.description());
}

using micle::models::stem_kind;
// The issue's two settings: ResNet-50 at 224 px with 128 samples (256 views) per step, and
// ResNet-18 at 64 px with 256 samples; fp32 with TF32 tensor cores, bf16 mixed precision
// (fp32 master weights), and strict fp32.
#define MICLE_STEP_GPU(name, depth, res, n, p, find)                                                      \
    BENCHMARK_CAPTURE(BM_step_gpu, name, depth, stem_kind::imagenet, res, n, precision::p, find)         \
        ->Unit(benchmark::kMillisecond)                                                                   \
        ->UseRealTime()
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/tf32, 50, 224, 128, tf32, false);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/tf32, 18, 64, 256, tf32, false);
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/bf16, 50, 224, 128, bf16, false);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/bf16, 18, 64, 256, bf16, false);
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/fp32, 50, 224, 128, fp32, false);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/fp32, 18, 64, 256, fp32, false);
// The same with cudnn_options::find_algorithms (each convolution's algorithms measured).
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/tf32/find, 50, 224, 128, tf32, true);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/tf32/find, 18, 64, 256, tf32, true);
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/bf16/find, 50, 224, 128, bf16, true);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/bf16/find, 18, 64, 256, bf16, true);
MICLE_STEP_GPU(resnet50_imagenet/224/128x2/fp32/find, 50, 224, 128, fp32, true);
MICLE_STEP_GPU(resnet18_imagenet/64/256x2/fp32/find, 18, 64, 256, fp32, true);

}  // namespace

BENCHMARK_MAIN();
