// Convolution forward, backward-data and backward-weights on the oneDNN backend for
// ResNet-typical shapes; GFLOP/s counts 2*N*O*OH*OW*C*kh*kw per pass. The benchmark name
// reads: pass/N/C/H/O/kernel/stride/bf16/lowered. bf16 rows (mixed precision: bf16 NHWC
// activations, fp32 weights) report an error on CPUs without AVX512-BF16. Each small map
// shape runs as conv2d chooses (lowered:1), with oneDNN's own convolution kernels only
// (lowered:0: neither lowered nor the small-map matrix product nor the space-to-depth
// weight gradient of the stem nor Winograd: the direct kernels), and, for maps no larger
// than the kernel, lowered instead of the small-map matrix product (lowered:2); lowered:3
// runs fp32 3x3 stride-1 shapes with oneDNN's Winograd kernels wherever oneDNN has them
// (conv2d takes them where conv2d<onednn>::winograd_pays).
#include <benchmark/benchmark.h>

#include <micle/micle.hpp>

#include <random>

namespace {

using B = micle::onednn;

struct conv_setup {
    micle::context<B> ctx;
    micle::ops::conv2d<B> op;
    micle::tensor<B> x, w, y, dy, dx, dw;
    double flops = 0;

    explicit conv_setup(const benchmark::State& state)
        : ctx(options(state.range(6) != 0)),
          op({state.range(4), state.range(4), state.range(5), state.range(5), state.range(4) / 2, state.range(4) / 2}) {
        const std::int64_t n = state.range(0), c = state.range(1), hw = state.range(2), o = state.range(3),
                           k = state.range(4);
        op.allow_lowered(state.range(7) != 0);
        op.allow_small_map_matmul(state.range(7) == 1);
        op.allow_space_to_depth(state.range(7) != 0);
        op.allow_winograd(state.range(7) != 0, state.range(7) == 3);
        std::mt19937 gen(1);
        std::uniform_real_distribution<float> d(-1, 1);
        auto rnd = [&](const micle::shape& sh) {
            std::vector<float> v(static_cast<std::size_t>(sh.numel()));
            for (auto& e : v) e = d(gen);
            return micle::tensor<B>::from_host(ctx, sh, v);
        };
        x = rnd({n, c, hw, hw});
        if (ctx.options().bf16)  // activations as a bf16 network hands them on: NHWC
            x = x.to_layout(ctx, dnnl::memory::desc(micle::onednn_detail::to_dims(x.shape()),
                                                    dnnl::memory::data_type::bf16, dnnl::memory::format_tag::nhwc));
        w = rnd({o, c, k, k});
        // Keep the weights in the layout the primitive wants, as a layer does.
        w = w.to_layout(ctx, op.preferred_weights_desc(ctx, x, w.shape(), false));
        op.forward(ctx, x, w, nullptr, y);
        dy = rnd(y.shape()).to_layout(ctx, y.desc());
        flops = 2.0 * double(y.numel()) * double(c * k * k);
    }

    static micle::onednn_options options(bool bf16) {
        micle::onednn_options o;
        o.bf16 = bf16;
        return o;
    }
};

bool runnable(benchmark::State& state) {
    if (state.range(6) == 0 || micle::onednn_detail::cpu_has_bf16()) return true;
    state.SkipWithError("bf16 needs a CPU with AVX512-BF16 or AMX");
    return false;
}

void report(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate,
                                                   benchmark::Counter::kIs1000);
}

void BM_conv_forward(benchmark::State& state) {
    if (!runnable(state)) return;
    conv_setup s(state);
    for (auto _ : state) {
        s.op.forward(s.ctx, s.x, s.w, nullptr, s.y);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}
void BM_conv_backward_data(benchmark::State& state) {
    if (!runnable(state)) return;
    conv_setup s(state);
    for (auto _ : state) {
        s.op.backward_data(s.ctx, s.dy, s.w, s.dx);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}
void BM_conv_backward_weights(benchmark::State& state) {
    if (!runnable(state)) return;
    conv_setup s(state);
    for (auto _ : state) {
        s.op.backward_weights(s.ctx, s.x, s.dy, s.dw, nullptr);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}

// N, C, H=W, O, kernel, stride, bf16, lowered: in fp32 the ResNet-50 stem, a 3x3 and the
// 1x1 convolutions of a bottleneck at 56x56 (224 px input), and a stage-3 3x3 at 64 px
// input, and the convolutions onto the 2x2 maps of the 64-px ResNet-50's layer4 and the
// 64-px ResNet-18's 3x3 stride 2 onto them (lowered on AVX-512, the 3x3 ones on AVX2, and
// not); in bf16 the convolutions onto small maps of the 64-px ResNet-50 (batch 32x2) and
// ResNet-18 (64x2) and the 32-px ResNet-18 (128x2), a 1x1 and a 3x3 on 16x16 maps, and
// the 7x7 stem (RGB and grayscale at 64 px, RGB at 224 px; with AMX its weight gradient
// runs space-to-depth);
// in both, the 3x3 convolutions on the 2x2 maps of the 64-px ResNet-18's layer4.
void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"N", "C", "HW", "O", "k", "s", "bf16", "lowered"});
    b->Args({32, 3, 64, 64, 7, 2, 0, 1});
    b->Args({32, 64, 56, 64, 3, 1, 0, 1});
    b->Args({32, 64, 56, 256, 1, 1, 0, 1});
    b->Args({32, 256, 56, 64, 1, 1, 0, 1});
    b->Args({32, 256, 8, 256, 3, 1, 0, 1});
    // fp32 3x3 stride-1 convolutions of ResNet-18 (batch 64x2: the 32-px small stem on RGB
    // and grayscale, its stages, and the 64-px stages) and ResNet-50 (32x2, 64 px), Winograd
    // (lowered:1 where winograd_pays, lowered:3 on the stems, which it leaves to the direct
    // kernels) against the direct kernels (lowered:0)
    for (const std::int64_t lowered : {1, 0}) {
        b->Args({128, 64, 32, 64, 3, 1, 0, lowered});
        b->Args({128, 128, 16, 128, 3, 1, 0, lowered});
        b->Args({128, 64, 16, 64, 3, 1, 0, lowered});
        b->Args({128, 128, 8, 128, 3, 1, 0, lowered});
        b->Args({64, 64, 16, 64, 3, 1, 0, lowered});
        b->Args({64, 128, 8, 128, 3, 1, 0, lowered});
        b->Args({128, 256, 4, 256, 3, 1, 0, lowered});
        b->Args({64, 256, 4, 256, 3, 1, 0, lowered});
    }
    for (const std::int64_t lowered : {3, 0}) {  // shapes the rule leaves to the direct kernels
        b->Args({128, 3, 32, 64, 3, 1, 0, lowered});
        b->Args({128, 1, 32, 64, 3, 1, 0, lowered});
    }
    for (const std::int64_t lowered : {1, 0}) {
        b->Args({64, 512, 4, 512, 3, 2, 0, lowered});
        b->Args({128, 256, 4, 512, 3, 2, 0, lowered});
        b->Args({64, 1024, 4, 2048, 1, 2, 0, lowered});
        b->Args({64, 512, 2, 2048, 1, 1, 0, lowered});
        b->Args({64, 2048, 2, 512, 1, 1, 0, lowered});
    }
    for (const std::int64_t lowered : {1, 0}) {
        b->Args({64, 256, 4, 256, 3, 1, 1, lowered});
        b->Args({64, 512, 4, 512, 3, 2, 1, lowered});
        b->Args({64, 1024, 4, 2048, 1, 2, 1, lowered});
        b->Args({64, 512, 2, 2048, 1, 1, 1, lowered});
        b->Args({64, 256, 4, 1024, 1, 1, 1, lowered});
        b->Args({128, 128, 8, 256, 3, 2, 1, lowered});
        b->Args({256, 512, 4, 512, 3, 1, 1, lowered});
        b->Args({256, 256, 8, 512, 3, 2, 1, lowered});
        b->Args({64, 64, 16, 256, 1, 1, 1, lowered});
        b->Args({64, 64, 16, 64, 3, 1, 1, lowered});
        b->Args({128, 3, 64, 64, 7, 2, 1, lowered});
        b->Args({128, 1, 64, 64, 7, 2, 1, lowered});
        b->Args({32, 3, 224, 64, 7, 2, 1, lowered});
    }
    for (const std::int64_t bf16 : {0, 1})
        for (const std::int64_t lowered : {1, 0, 2}) b->Args({128, 512, 2, 512, 3, 1, bf16, lowered});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_conv_forward)->Apply(shapes);
BENCHMARK(BM_conv_backward_data)->Apply(shapes);
BENCHMARK(BM_conv_backward_weights)->Apply(shapes);
BENCHMARK_MAIN();
