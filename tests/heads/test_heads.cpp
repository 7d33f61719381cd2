#include "micle/heads/linear.hpp"
#include "micle/heads/projection.hpp"
#include "testing.hpp"

using namespace micle;

namespace {
template <class B>
std::vector<std::string> names_of(nn::state_list<B> s) {
    std::vector<std::string> r;
    for (auto* p : s.params) r.push_back(p->name + " " + p->value.shape().str());
    for (auto* b : s.buffers) r.push_back(b->name);
    return r;
}
}  // namespace

TEST_CASE("projection heads: SimCLR v1 and v2 layouts under nn.Sequential names") {
    context<reference> ctx;
    heads::projection<reference> v1(ctx, heads::projection_config::simclr_v1(), 512, 1);
    CHECK(v1.output_dim() == 128);
    CHECK(names_of(v1.state()) ==
          std::vector<std::string>{"head.0.weight [512, 512]", "head.0.bias [512]", "head.2.weight [128, 512]", "head.2.bias [128]"});
    auto v2cfg = heads::projection_config::simclr_v2();
    v2cfg.hidden = 64;
    heads::projection<reference> v2(ctx, v2cfg, 32, 1);
    CHECK(names_of(v2.state()) == std::vector<std::string>{
                                      "head.0.weight [64, 32]", "head.1.weight [64]",  "head.1.bias [64]",
                                      "head.3.weight [64, 64]", "head.4.weight [64]",  "head.4.bias [64]",
                                      "head.6.weight [128, 64]", "head.7.weight [128]", "head.7.bias [128]",
                                      "head.1.running_mean",     "head.1.running_var",  "head.4.running_mean",
                                      "head.4.running_var",      "head.7.running_mean", "head.7.running_var"});
    heads::projection_config bad;
    bad.layers = 4;
    CHECK_THROWS_WITH_AS(heads::projection<reference>(ctx, bad, 8, 0), "projection head: layers must be 2 or 3, got 4",
                         value_error);
}

TEST_CASE("heads<reference>: input and parameter gradients match finite differences") {
    context<reference> ctx;
    const shape xs{6, 5};
    auto xv = testing::random_values(xs.numel(), 1);
    const auto r = testing::random_values(6 * 4, 2);
    for (const bool bn : {false, true}) {
        CAPTURE(bn);
        heads::projection_config cfg{bn ? 3 : 2, bn, 7, 4, "head"};
        heads::projection<reference> h(ctx, cfg, 5, 3);
        auto x = tensor<reference>::from_host(ctx, xs, xv);
        h.forward(ctx, x, true);
        const auto dx = h.backward(ctx, tensor<reference>::from_host(ctx, {6, 4}, r)).to_host(ctx);
        auto loss = [&] {
            auto xx = tensor<reference>::from_host(ctx, xs, xv);
            return testing::project(h.forward(ctx, xx, true).to_host(ctx), r);
        };
        testing::gradcheck(xv, dx, loss, "dx");
        for (auto* p : h.state().params) {
            auto v = p->value.to_host(ctx);
            const auto g = p->grad.to_host(ctx);
            testing::gradcheck(v, g, [&] {
                p->value.assign(ctx, v);
                return loss();
            }, p->name);
            p->value.assign(ctx, v);
        }
    }
    heads::linear<reference> lin(ctx, {3, "fc"}, 5, 4);
    CHECK(lin.output_dim() == 3);
    auto x = tensor<reference>::from_host(ctx, xs, xv);
    lin.forward(ctx, x, true);
    const auto r3 = testing::random_values(18, 5);
    const auto dx = lin.backward(ctx, tensor<reference>::from_host(ctx, {6, 3}, r3)).to_host(ctx);
    testing::gradcheck(xv, dx, [&] {
        auto xx = tensor<reference>::from_host(ctx, xs, xv);
        return testing::project(lin.forward(ctx, xx, true).to_host(ctx), r3);
    }, "linear head dx");
}

#if MICLE_HAS_ONEDNN
TEST_CASE("projection head<onednn>: weights move to the inner product's layout at the first forward; values, outputs "
          "and gradients as the reference") {
    context<onednn> ctx;
    context<reference> rctx;
    const auto cfg = heads::projection_config::simclr_v1();  // Linear(64, 64), ReLU, Linear(64, 128)
    heads::projection<onednn> h(ctx, cfg, 64, 7);
    heads::projection<reference> r(rctx, cfg, 64, 7);
    auto st = h.state();
    auto sr = r.state();
    REQUIRE(st.params.size() == sr.params.size());
    std::vector<std::vector<float>> before;
    for (auto* p : st.params) {
        CHECK(p->value.is_plain());  // as built
        before.push_back(p->value.to_host(ctx));
    }
    const auto xv = testing::random_values(8 * 64, 3), dyv = testing::random_values(8 * 128, 4);
    const auto x = tensor<onednn>::from_host(ctx, {8, 64}, xv);  // backward reads the input again
    const auto xr = tensor<reference>::from_host(rctx, {8, 64}, xv);
    testing::expect_close(h.forward(ctx, x, true).to_host(ctx), r.forward(rctx, xr, true).to_host(rctx), 1e-5, 1e-6,
                          "output");
    testing::expect_close(h.backward(ctx, tensor<onednn>::from_host(ctx, {8, 128}, dyv)).to_host(ctx),
                          r.backward(rctx, tensor<reference>::from_host(rctx, {8, 128}, dyv)).to_host(rctx), 1e-5, 1e-6,
                          "dx");
    const std::size_t moved = testing::moved_params(ctx, st, before);
    for (std::size_t i = 0; i < st.params.size(); ++i) {
        CAPTURE(st.params[i]->name);
        testing::expect_close(st.params[i]->grad.to_host(ctx), sr.params[i]->grad.to_host(rctx), 1e-5, 1e-6, "grad");
    }
    // Each weight in the layout that saves the most reorders on this CPU (blocked for both
    // layers where oneDNN's brgemm runs, plain where its gemm reads either); biases stay plain.
    std::size_t expected_moved = 0;
    for (auto* p : st.params) {
        if (p->value.shape().rank() == 1) CHECK(p->value.is_plain());
        else expected_moved += testing::check_linear_layout_rule(ctx, *p, onednn_detail::plain_md(shape{8, 64}), true);
    }
    CHECK(moved == expected_moved);
    // A second forward keeps them where they are.
    testing::check_params_stay(st, [&] { h.forward(ctx, x, true); });
}
#endif
