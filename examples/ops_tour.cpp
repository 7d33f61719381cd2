// A tour of micle's ops: a small CNN written directly with the op objects, trained with
// plain SGD on a synthetic two-class image task, on the backend chosen at compile time
// (micle::default_backend) and, for comparison, on the reference backend.
//
//   conv3x3(1->8) -> BN+ReLU -> maxpool 2x2 -> conv3x3(8->16) -> BN+ReLU -> global avg pool
//   -> linear(16->2) -> softmax cross-entropy
//
// The task: 16x16 noise images with a bright horizontal (class 0) or vertical (class 1)
// 2x8 bar at a random place. Usage: micle_ops_tour [steps]
#include <micle/micle.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

struct batch {
    std::vector<float> images;
    std::vector<int> labels;
};

batch make_batch(int n, std::uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    std::uniform_int_distribution<int> pos(0, 4);  // bar origin, in steps of 2 pixels
    batch b{std::vector<float>(static_cast<std::size_t>(n) * 256), std::vector<int>(static_cast<std::size_t>(n))};
    for (int i = 0; i < n; ++i) {
        const int label = int(gen() & 1u);
        b.labels[static_cast<std::size_t>(i)] = label;
        float* img = b.images.data() + std::size_t(i) * 256;
        for (int p = 0; p < 256; ++p) img[p] = noise(gen);
        const int r0 = pos(gen) * 2, c0 = pos(gen) * 2, h = label ? 8 : 2, w = label ? 2 : 8;
        for (int r = r0; r < r0 + h; ++r)
            for (int c = c0; c < c0 + w; ++c) img[r * 16 + c] += 1.0f;
    }
    return b;
}

template <class B>
struct tiny_cnn {
    using T = micle::tensor<B>;
    micle::context<B>& ctx;
    micle::ops::conv2d<B> conv1{{3, 3, 1, 1, 1, 1}}, conv2{{3, 3, 1, 1, 1, 1}};
    micle::ops::batch_norm<B> bn1{{1e-5f, 0.1f, true}}, bn2{{1e-5f, 0.1f, true}};
    micle::ops::pool2d<B> pool{{micle::ops::pool_kind::max, 2, 2, 2, 2, 0, 0}};
    micle::ops::global_avg_pool<B> gap;
    micle::ops::linear<B> fc;
    micle::ops::softmax_cross_entropy<B> loss;
    // parameters, their gradients, BN running statistics
    T w1, w2, g1, b1, g2, b2, wf, bf, rm1, rv1, rm2, rv2;
    T dw1, dw2, dg1, db1, dg2, db2, dwf, dbf;
    // activations and their gradients
    T x, a1, h1, p1, a2, h2, f, logits, dlogits, df, dh2, da2, dp1, dh1, da1, dx;

    explicit tiny_cnn(micle::context<B>& c) : ctx(c) {
        std::mt19937_64 gen(42);
        auto init = [&](const micle::shape& s, float scale) {
            std::normal_distribution<float> d(0.0f, scale);
            std::vector<float> v(static_cast<std::size_t>(s.numel()));
            for (auto& e : v) e = d(gen);
            return T::from_host(ctx, s, v);
        };
        auto fill = [&](const micle::shape& s, float v) {
            return T::from_host(ctx, s, std::vector<float>(static_cast<std::size_t>(s.numel()), v));
        };
        w1 = init({8, 1, 3, 3}, 0.47f);
        w2 = init({16, 8, 3, 3}, 0.17f);
        wf = init({2, 16}, 0.25f);
        bf = fill({2}, 0.0f);
        g1 = fill({8}, 1.0f), b1 = fill({8}, 0.0f), rm1 = fill({8}, 0.0f), rv1 = fill({8}, 1.0f);
        g2 = fill({16}, 1.0f), b2 = fill({16}, 0.0f), rm2 = fill({16}, 0.0f), rv2 = fill({16}, 1.0f);
    }

    float step(const batch& b, float lr) {
        const auto n = static_cast<std::int64_t>(b.labels.size());
        x = T::from_host(ctx, {n, 1, 16, 16}, b.images);
        conv1.forward(ctx, x, w1, nullptr, a1);
        bn1.forward_training(ctx, a1, g1, b1, rm1, rv1, h1);
        pool.forward(ctx, h1, p1);
        conv2.forward(ctx, p1, w2, nullptr, a2);
        bn2.forward_training(ctx, a2, g2, b2, rm2, rv2, h2);
        gap.forward(ctx, h2, f);
        fc.forward(ctx, f, wf, &bf, logits);
        const float l = loss.forward(ctx, logits, b.labels);

        loss.backward(ctx, dlogits);
        fc.backward_weights(ctx, f, dlogits, dwf, &dbf);
        fc.backward_data(ctx, dlogits, wf, df);
        gap.backward(ctx, df, dh2);
        bn2.backward(ctx, a2, dh2, g2, b2, da2, dg2, db2);
        conv2.backward_weights(ctx, p1, da2, dw2, nullptr);
        conv2.backward_data(ctx, da2, w2, dp1);
        pool.backward(ctx, dp1, dh1);
        bn1.backward(ctx, a1, dh1, g1, b1, da1, dg1, db1);
        conv1.backward_weights(ctx, x, da1, dw1, nullptr);

        // Plain SGD through host copies, which works the same on every backend (the
        // library's optimizers, micle/optim/, update in place on the backend instead).
        for (auto [p, g] : {std::pair{&w1, &dw1}, {&w2, &dw2}, {&wf, &dwf}, {&bf, &dbf}, {&g1, &dg1}, {&b1, &db1},
                            {&g2, &dg2}, {&b2, &db2}}) {
            auto pv = p->to_host(ctx);
            const auto gv = g->to_host(ctx);
            for (std::size_t i = 0; i < pv.size(); ++i) pv[i] -= lr * gv[i];
            p->assign(ctx, pv);
        }
        return l;
    }

    float accuracy(const batch& b) {
        const auto n = static_cast<std::int64_t>(b.labels.size());
        x = T::from_host(ctx, {n, 1, 16, 16}, b.images);
        conv1.forward(ctx, x, w1, nullptr, a1);
        bn1.forward_inference(ctx, a1, g1, b1, rm1, rv1, h1);
        pool.forward(ctx, h1, p1);
        conv2.forward(ctx, p1, w2, nullptr, a2);
        bn2.forward_inference(ctx, a2, g2, b2, rm2, rv2, h2);
        gap.forward(ctx, h2, f);
        fc.forward(ctx, f, wf, &bf, logits);
        const auto lv = logits.to_host(ctx);
        int correct = 0;
        for (std::int64_t i = 0; i < n; ++i)
            correct += int((lv[std::size_t(2 * i + 1)] > lv[std::size_t(2 * i)]) == bool(b.labels[std::size_t(i)]));
        return float(correct) / float(n);
    }
};

template <class B>
void train(int steps) {
    micle::context<B> ctx;
    tiny_cnn<B> net(ctx);
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
        const float l = net.step(make_batch(32, 1000 + std::uint64_t(s)), 0.2f);
        if (s % 10 == 0 || s == steps - 1) std::printf("  [%s] step %3d  loss %.4f\n", std::string(B::name).c_str(), s, l);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  [%s] %d steps in %.2f s; held-out accuracy %.1f%%\n", std::string(B::name).c_str(), steps, secs,
                100.0 * net.accuracy(make_batch(256, 7)));
}

}  // namespace

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 60;
    std::printf("micle %s ops tour: tiny CNN, synthetic bar-orientation task, %d SGD steps\n", MICLE_VERSION_STRING, steps);
    try {
        train<micle::default_backend>(steps);
        if constexpr (!std::is_same_v<micle::default_backend, micle::reference>) train<micle::reference>(steps);
    } catch (const micle::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
