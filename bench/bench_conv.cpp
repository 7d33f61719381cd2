// Convolution forward, backward-data and backward-weights on the oneDNN backend for
// ResNet-typical shapes; GFLOP/s counts 2*N*O*OH*OW*C*kh*kw per pass. The benchmark name
// reads: pass/N/C/H/O/kernel/stride.
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

    conv_setup(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t o, std::int64_t k, std::int64_t s)
        : op({k, k, s, s, k / 2, k / 2}) {
        std::mt19937 gen(1);
        std::uniform_real_distribution<float> d(-1, 1);
        auto rnd = [&](const micle::shape& sh) {
            std::vector<float> v(static_cast<std::size_t>(sh.numel()));
            for (auto& e : v) e = d(gen);
            return micle::tensor<B>::from_host(ctx, sh, v);
        };
        x = rnd({n, c, hw, hw});
        w = rnd({o, c, k, k});
        // Keep the weights in the layout the primitive wants, as a layer does.
        w = w.to_layout(ctx, op.preferred_weights_desc(ctx, x, w.shape(), false));
        op.forward(ctx, x, w, nullptr, y);
        dy = rnd(y.shape()).to_layout(ctx, y.desc());
        flops = 2.0 * double(y.numel()) * double(c * k * k);
    }
};

void report(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate,
                                                   benchmark::Counter::kIs1000);
}

void BM_conv_forward(benchmark::State& state) {
    conv_setup s(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), state.range(5));
    for (auto _ : state) {
        s.op.forward(s.ctx, s.x, s.w, nullptr, s.y);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}
void BM_conv_backward_data(benchmark::State& state) {
    conv_setup s(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), state.range(5));
    for (auto _ : state) {
        s.op.backward_data(s.ctx, s.dy, s.w, s.dx);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}
void BM_conv_backward_weights(benchmark::State& state) {
    conv_setup s(state.range(0), state.range(1), state.range(2), state.range(3), state.range(4), state.range(5));
    for (auto _ : state) {
        s.op.backward_weights(s.ctx, s.x, s.dy, s.dw, nullptr);
        s.ctx.synchronize();
    }
    report(state, s.flops);
}

// N, C, H=W, O, kernel, stride: the ResNet-50 stem, a 3x3 and the 1x1 convolutions of a
// bottleneck at 56x56 (224 px input), and a stage-3 3x3 at 64 px input.
void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"N", "C", "HW", "O", "k", "s"});
    b->Args({32, 3, 64, 64, 7, 2});
    b->Args({32, 64, 56, 64, 3, 1});
    b->Args({32, 64, 56, 256, 1, 1});
    b->Args({32, 256, 56, 64, 1, 1});
    b->Args({32, 256, 8, 256, 3, 1});
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_conv_forward)->Apply(shapes);
BENCHMARK(BM_conv_backward_data)->Apply(shapes);
BENCHMARK(BM_conv_backward_weights)->Apply(shapes);
BENCHMARK_MAIN();
