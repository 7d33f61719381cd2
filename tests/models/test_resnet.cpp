#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "micle/models/resnet.hpp"
#include "testing.hpp"

using namespace micle;
using models::resnet_config;
using models::stem_kind;

TEST_CASE("resnet: parameter counts equal torchvision's") {
    // torchvision.models.resnetXX() (1000 classes): sum(p.numel() for p in m.parameters())
    const std::pair<int, std::int64_t> expected[] = {
        {18, 11'689'512}, {34, 21'797'672}, {50, 25'557'032}, {101, 44'549'160}, {152, 60'192'808}};
    for (const auto& [depth, count] : expected) {
        resnet_config c;
        c.depth = depth;
        c.num_classes = 1000;
        CAPTURE(c.depth);  // not `depth`: CAPTURE's lambda cannot capture a structured binding (C++20)
        CHECK(c.parameter_count() == count);
    }
    // SimCLR's wide ResNet-50s without the classifier: about 94M and 375M.
    resnet_config w2;
    w2.width = 2;
    CHECK(w2.parameter_count() == 93'907'072);
    resnet_config w4;
    w4.width = 4;
    CHECK(w4.parameter_count() == 375'378'176);
    CHECK(w4.feature_dim() == 8192);
}

TEST_CASE("resnet: the built model has the planned parameters under torchvision's names") {
    context<reference> ctx;
    for (const int depth : {18, 50}) {
        CAPTURE(depth);
        resnet_config c;
        c.depth = depth;
        c.num_classes = 1000;
        models::resnet<reference> m(ctx, c, 1);
        auto st = m.state();
        CHECK(st.parameter_count() == c.parameter_count());
        std::set<std::string> names;
        for (auto* p : st.params) names.insert(p->name);
        for (auto* b : st.buffers) names.insert(b->name);
        for (auto* k : st.counters) names.insert(k->name);
        for (const char* n : {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                              "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer3.0.downsample.0.weight",
                              "layer3.0.downsample.1.running_var", "layer4.1.bn2.weight", "fc.weight", "fc.bias"})
            CHECK_MESSAGE(names.count(n) == 1, n);
        CHECK(names.count("layer1.0.conv3.weight") == (depth == 50 ? 1u : 0u));
        CHECK(names.count("layer1.0.downsample.0.weight") == (depth == 50 ? 1u : 0u));
        // torchvision's state_dict has exactly these entries
        CHECK(names.size() == (depth == 18 ? 122u : 320u));
    }
}

TEST_CASE("resnet: stems, channels, output sizes, zero-init residual") {
    context<reference> ctx;
    resnet_config c;
    c.depth = 18;
    c.base_channels = 4;
    c.in_channels = 1;
    c.stem = stem_kind::small;
    c.zero_init_residual = true;
    models::resnet<reference> m(ctx, c, 2);
    const auto x = tensor<reference>::from_host(ctx, {2, 1, 12, 12}, testing::random_values(288, 3));
    const auto& y = m.forward(ctx, x, true);
    CHECK(y.shape() == shape{2, 32});
    for (auto* p : m.state().params) {
        if (p->name == "conv1.weight") CHECK(p->value.shape() == shape{4, 1, 3, 3});
        if (p->name == "layer2.1.bn2.weight") CHECK(p->value.to_host(ctx) == std::vector<float>(8, 0.0f));
        if (p->name == "layer2.1.bn1.weight") CHECK(p->value.to_host(ctx) == std::vector<float>(8, 1.0f));
    }
    resnet_config big;
    big.depth = 50;
    big.base_channels = 2;
    models::resnet<reference> m2(ctx, big, 2);
    const auto x2 = tensor<reference>::from_host(ctx, {1, 3, 33, 33}, testing::random_values(3 * 33 * 33, 4));
    CHECK(m2.forward(ctx, x2, false).shape() == shape{1, 64});  // 8 * 2 * 4

    resnet_config bad;
    bad.depth = 20;
    CHECK_THROWS_WITH_AS(models::resnet<reference>(ctx, bad, 0), doctest::Contains("depth 20 is not one of"), value_error);
    CHECK_THROWS_WITH_AS(m.forward(ctx, x2, true), doctest::Contains("must be [N, 1, H, W]"), shape_error);
}

// Whole-network gradients: every op's gradient is checked against finite differences on
// its own (tests/backend), the oneDNN network against the reference network below, and
// the reference network's gradients against PyTorch autograd in tests/interop. A finite-
// difference check of a whole ReLU/max-pool network is not informative: steps large
// enough to rise above float rounding cross activation kinks.

#ifdef MICLE_FAST_BACKENDS
namespace {

struct host_map {
    shape s;
    std::vector<float> v;
};

// The branches a ReLU network takes on one input: the sign of every ReLU input and the
// winner of every max-pool window, recomputed on the host from the batch-norm outputs
// and the block structure of `c.plan()`. The gradient jumps where a branch changes, so
// two backends that round differently (thread count, vector width, f32 against f64
// accumulation) legitimately disagree on the gradient of an input that lies within
// rounding of a kink; comparing their gradients is only informative when both took the
// same branches.
template <class B>
std::vector<std::int32_t> branches(context<B>& ctx, models::resnet<B>& m, const resnet_config& c) {
    std::map<std::string, host_map> bn;  // "layer1.0.bn1" -> output (after its fused ReLU, if any)
    for (auto* n : m.state().norms) {
        const std::string& w = n->gamma().name;  // "<bn>.weight"
        bn[w.substr(0, w.size() - 7)] = {n->output().shape(), n->output().to_host(ctx)};
    }
    std::vector<std::int32_t> taken;
    const auto signs = [&](const std::vector<float>& v) {
        for (float a : v) taken.push_back(a > 0.0f);
    };
    host_map h = bn.at("bn1");
    signs(h.v);
    if (c.stem == stem_kind::imagenet) {  // 3x3 stride-2 max pool, padding 1: first maximum wins
        const auto N = h.s[0], C = h.s[1], H = h.s[2], W = h.s[3];
        const auto OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
        host_map p{shape{N, C, OH, OW}, {}};
        for (std::int64_t nc = 0; nc < N * C; ++nc)
            for (std::int64_t oy = 0; oy < OH; ++oy)
                for (std::int64_t ox = 0; ox < OW; ++ox) {
                    std::int32_t arg = -1;
                    float best = 0.0f;
                    for (std::int64_t ky = 0; ky < 3; ++ky)
                        for (std::int64_t kx = 0; kx < 3; ++kx) {
                            const auto iy = 2 * oy - 1 + ky, ix = 2 * ox - 1 + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            const float a = h.v[std::size_t((nc * H + iy) * W + ix)];
                            if (arg < 0 || a > best) best = a, arg = std::int32_t(ky * 3 + kx);
                        }
                    taken.push_back(arg);
                    p.v.push_back(best);
                }
        h = std::move(p);
    }
    for (const auto& b : c.plan()) {
        const std::size_t main = b.convs.size() - (b.has_shortcut ? 1 : 0);
        for (std::size_t i = 0; i + 1 < main; ++i) signs(bn.at(b.convs[i].bn).v);  // fused ReLUs
        host_map z = bn.at(b.convs[main - 1].bn);  // block output: relu(last bn + shortcut)
        const auto& skip = b.has_shortcut ? bn.at(b.convs.back().bn).v : h.v;
        for (std::size_t i = 0; i < z.v.size(); ++i) z.v[i] += skip[i];
        signs(z.v);
        for (auto& a : z.v) a = std::max(a, 0.0f);
        h = std::move(z);
    }
    return taken;
}

}  // namespace

TEST_CASE_TEMPLATE("resnet: forward and all parameter gradients equal the reference", B, MICLE_FAST_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    for (const int depth : {18, 50}) {
        CAPTURE(depth);
        resnet_config c;
        c.depth = depth;
        c.base_channels = 4;
        c.num_classes = 5;
        // About 10^5 ReLU inputs and 4096 pooling windows per pass: an input whose pass
        // lands within rounding of a kink is tried again with the next seed (branches()).
        bool compared = false;
        for (std::uint64_t seed = 10; seed < 90 && !compared; seed += 10) {
            CAPTURE(seed);
            context<B> ctx;
            context<reference> rctx;
            models::resnet<B> m(ctx, c, 9);
            models::resnet<reference> ref(rctx, c, 9);
            // f32 against f64 accumulation through 20-50 layers, batch norm amplifying the
            // differences: 2e-3 relative plus 1e-3 of the scale.
            const auto xv = testing::random_values(4 * 3 * 64 * 64, seed);
            const auto x = tensor<B>::from_host(ctx, {4, 3, 64, 64}, xv);
            const auto xr = tensor<reference>::from_host(rctx, {4, 3, 64, 64}, xv);
            testing::expect_close(m.forward(ctx, x, true).to_host(ctx), ref.forward(rctx, xr, true).to_host(rctx), 2e-3,
                                  1e-3, "logits");
            const auto g = testing::random_values(20, seed + 1);
            m.backward(ctx, tensor<B>::from_host(ctx, {4, 5}, g));
            ref.backward(rctx, tensor<reference>::from_host(rctx, {4, 5}, g));
            auto s = m.state();
            auto sr = ref.state();
            REQUIRE(s.params.size() == sr.params.size());
            for (std::size_t i = 0; i < s.buffers.size(); ++i)
                testing::expect_close(s.buffers[i]->value.to_host(ctx), sr.buffers[i]->value.to_host(rctx), 1e-3, 1e-4,
                                      s.buffers[i]->name);
            const auto fast = branches(ctx, m, c), slow = branches(rctx, ref, c);
            REQUIRE(fast.size() == slow.size());
            const auto differ = std::inner_product(fast.begin(), fast.end(), slow.begin(), std::size_t{0},
                                                   std::plus<>(), std::not_equal_to<>());
            if (differ > 0) {
                MESSAGE("depth " << depth << ", input seed " << seed << ": " << differ << " of " << fast.size()
                                 << " ReLU/max-pool branches differ between the backends; trying another input");
                continue;
            }
            for (std::size_t i = 0; i < s.params.size(); ++i) {
                CAPTURE(s.params[i]->name);
                testing::expect_close(s.params[i]->grad.to_host(ctx), sr.params[i]->grad.to_host(rctx), 2e-3, 2e-3,
                                      "grad");
            }
            // inference mode uses the running statistics just updated
            testing::expect_close(m.forward(ctx, x, false).to_host(ctx), ref.forward(rctx, xr, false).to_host(rctx),
                                  2e-3, 1e-3, "logits (eval)");
            compared = true;
        }
        CHECK_MESSAGE(compared, "every input tried took a different ReLU/max-pool branch on the two backends");
    }
}
#endif

#if MICLE_HAS_ONEDNN
TEST_CASE("resnet<onednn>: convolution weights move to their preferred layout at the first forward, values unchanged") {
    context<onednn> ctx;
    resnet_config c;
    c.depth = 18;
    c.base_channels = 16;
    c.num_classes = 5;
    models::resnet<onednn> m(ctx, c, 3);
    auto st = m.state();
    std::vector<std::vector<float>> before;
    for (auto* p : st.params) {
        CHECK(p->value.is_plain());  // as built
        before.push_back(p->value.to_host(ctx));
    }
    const auto x = tensor<onednn>::from_host(ctx, {4, 3, 64, 64}, testing::random_values(4 * 3 * 64 * 64, 5));
    m.forward(ctx, x, true);
    m.backward(ctx, tensor<onednn>::from_host(ctx, {4, 5}, testing::random_values(20, 6)));
    const std::size_t moved = testing::moved_params(ctx, st, before);
    std::size_t moved_fc = 0;
    for (auto* p : st.params) {
        CAPTURE(p->name);
        const auto rank = p->value.shape().rank();
        if (rank == 1) CHECK(p->value.is_plain());  // batch norm, the fc's bias
        if (rank != 2) continue;
        // The 5-class fc's weight follows the inner product's rule: never padded (AVX-512's
        // 16-row blocks would pad it), moved only where that saves reorders (AVX2's gemm
        // prefers the transposed [128, 5]).
        moved_fc += testing::check_linear_layout_rule(ctx, *p, onednn_detail::plain_md(shape{4, 128}), true);
    }
    // Every one of the 20 convolutions prefers a layout other than OIHW (oneDNN's blocked
    // layouts on every ISA; [C, kh, kw, O] for layer4's 3x3 convolutions on 2x2 maps),
    // except a 1x1 convolution that runs as a lowered matrix product, whose [O, kh, kw, C]
    // is OIHW itself. Which of the three 1x1 stride-2 shortcuts (16 -> 32 from 16x16,
    // 32 -> 64 from 8x8, 64 -> 128 from 4x4) run lowered on this CPU, their ops say.
    std::size_t lowered_1x1 = 0;
    for (const auto& [c, o, side] : {std::tuple{16, 32, 16}, std::tuple{32, 64, 8}, std::tuple{64, 128, 4}}) {
        ops::conv2d<onednn> shortcut({1, 1, 2, 2, 0, 0});
        tensor<onednn> y;
        shortcut.forward(ctx, tensor<onednn>::zeros(ctx, shape{4, c, side, side}), tensor<onednn>::zeros(ctx, shape{o, c, 1, 1}),
                         nullptr, y);
        lowered_1x1 += shortcut.runs_lowered();
    }
    MESSAGE(lowered_1x1 << " of the 1x1 shortcuts run lowered on " << std::string(onednn_detail::isa_name(dnnl::get_effective_cpu_isa())));
    CHECK(moved - moved_fc == 20 - lowered_1x1);
    // A second forward keeps them where they are.
    testing::check_params_stay(st, [&] { m.forward(ctx, x, true); });
}
#endif

TEST_CASE("resnet: forward FLOPs") {
    // torchvision resnet50 at 224 px: 4.09 GMACs by the usual count (padding taps included,
    // e.g. fvcore/ptflops report 4.09-4.11 G); the useful count is slightly lower.
    resnet_config r50;
    r50.num_classes = 1000;
    const double g = double(r50.forward_flops(224, 224)) / 2e9;
    CHECK(g > 3.90);  // 3.948: 1x1 convolutions (no padding) dominate
    CHECK(g < 4.09);
    // resnet18: 1.814 GMACs by the usual count.
    resnet_config r18;
    r18.depth = 18;
    r18.num_classes = 1000;
    const double g18 = double(r18.forward_flops(224, 224)) / 2e9;
    CHECK(g18 > 1.65);  // 1.680: 3x3 convolutions on 7x7 maps lose 18% to padding
    CHECK(g18 < 1.815);
    // Padding matters at small sizes: at 64 px, layer4 runs 3x3 convolutions on 2x2 maps.
    CHECK(double(r18.forward_flops(64, 64)) / 2e9 < 0.8 * 1.814 * (64.0 * 64.0) / (224.0 * 224.0));
}

TEST_CASE("resnet: the architecture round-trips through checkpoint metadata - bad values are named") {
    resnet_config c;
    c.depth = 34;
    c.width = 2;
    c.base_channels = 16;
    c.in_channels = 1;
    c.stem = stem_kind::small;
    const auto meta = models::resnet_metadata(c, 96);
    CHECK(meta.at("arch") == "resnet34");
    CHECK(meta.at("image-size") == "96");
    const auto back = models::resnet_from_metadata(meta);
    CHECK(back.depth == 34);
    CHECK(back.width == 2);
    CHECK(back.base_channels == 16);
    CHECK(back.in_channels == 1);
    CHECK(back.stem == stem_kind::small);
    resnet_config defaults;
    defaults.depth = 18;
    CHECK(models::resnet_from_metadata({}, defaults).depth == 18);  // keys it lacks keep the defaults
    CHECK_THROWS_WITH_AS(models::resnet_from_metadata({{"arch", "vgg16"}}), doctest::Contains("arch must be resnet"), value_error);
    CHECK_THROWS_WITH_AS(models::resnet_from_metadata({{"width", "two"}}), doctest::Contains("width 'two' is not a number"), value_error);
    CHECK_THROWS_WITH_AS(models::resnet_from_metadata({{"arch", "resnet19"}}), doctest::Contains("depth 19"), value_error);
    CHECK_THROWS_WITH_AS(models::resnet_from_metadata({{"stem", "big"}}), doctest::Contains("stem must be imagenet or small"), value_error);
}
