#pragma once
// Shared helpers of the test suite: random data, comparisons with stated tolerances, and
// central finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "micle/micle.hpp"

namespace micle::testing {

// The backends a template test case runs on: MICLE_FAST_BACKENDS (compared with the
// reference) and MICLE_ALL_BACKENDS (the reference too). The GPU backend's cases come from
// tests/cuda/, which compiles the same test files a second time, as CUDA, for the GPU
// backend alone (MICLE_TEST_GPU_PASS); they skip with a message when there is no device
// (MICLE_SKIP_WITHOUT_DEVICE).
#if MICLE_HAS_CUDNN && defined(__CUDACC__)
#define MICLE_TEST_WITH_CUDNN 1
#else
#define MICLE_TEST_WITH_CUDNN 0
#endif
#if defined(MICLE_TEST_GPU_PASS)
#define MICLE_FAST_BACKENDS ::micle::cudnn
#define MICLE_ALL_BACKENDS ::micle::cudnn
#else
#if MICLE_HAS_ONEDNN
#define MICLE_FAST_BACKENDS ::micle::onednn
#define MICLE_ALL_BACKENDS ::micle::reference, ::micle::onednn
#else
#define MICLE_ALL_BACKENDS ::micle::reference
#endif
#endif

/// False, after one line on standard output saying why, when backend B has no device to
/// run on. ctest reports such a case as skipped (tests/CMakeLists.txt matches the line),
/// not as passed.
template <class B>
bool device_ready() {
#if MICLE_TEST_WITH_CUDNN
    if constexpr (std::is_same_v<B, ::micle::cudnn>) {
        static const std::string why = cudnn_detail::no_device_reason();
        if (!why.empty()) {
            std::printf("skipped on the cudnn backend: %s\n", why.c_str());
            MESSAGE("skipped on the cudnn backend: " << why);
            return false;
        }
        // Comparisons with the reference use full fp32: no TF32 tensor cores (their
        // 10-bit inputs are tested separately, with their own tolerance).
        cudnn_defaults().allow_tf32 = false;
    }
#endif
    return true;
}
#define MICLE_SKIP_WITHOUT_DEVICE(B)                  \
    do {                                               \
        if (!::micle::testing::device_ready<B>()) return; \
    } while (0)

inline std::vector<float> random_values(std::int64_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = dist(gen);
    return v;
}

template <class B>
tensor<B> make(context<B>& ctx, const shape& s, const std::vector<float>& v) {
    return tensor<B>::from_host(ctx, s, v);
}

/// |got - want| <= atol + rtol * |want| element by element, where atol is `atol_rel`
/// times the largest |want| (the scale of the result). Reports the worst element.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                         double atol_rel, const std::string& what) {
    REQUIRE_MESSAGE(got.size() == want.size(), what << ": " << got.size() << " values, expected " << want.size());
    double scale = 0;
    for (float w : want) scale = std::max(scale, double(std::abs(w)));
    const double atol = atol_rel * std::max(scale, 1e-6);
    std::size_t worst = 0;
    double worst_excess = -1, worst_err = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double err = std::abs(double(got[i]) - double(want[i]));
        const double excess = err - (atol + rtol * std::abs(double(want[i])));
        if (!(excess <= worst_excess) || std::isnan(err)) {
            worst_excess = std::isnan(err) ? 1e300 : excess;
            worst = i;
            worst_err = err;
        }
    }
    INFO(what << ": worst element " << worst << " got " << got[worst] << " want " << want[worst] << " (|err| "
              << worst_err << ", scale " << scale << ", rtol " << rtol << ", atol " << atol << ")");
    CHECK(worst_excess <= 0);
}

/// Central finite differences of `loss` (which reads `v`) with respect to every element of
/// `v`, compared with `analytic`: |numeric - analytic| <= atol + rtol * |analytic|.
inline void gradcheck(std::vector<float>& v, const std::vector<float>& analytic, const std::function<double()>& loss,
                      const std::string& what, double eps = 5e-3, double rtol = 1e-2, double atol = 2e-3) {
    REQUIRE(v.size() == analytic.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const float saved = v[i];
        v[i] = saved + static_cast<float>(eps);
        const double up = loss();
        v[i] = saved - static_cast<float>(eps);
        const double down = loss();
        v[i] = saved;
        const double numeric = (up - down) / (2 * eps);
        const double err = std::abs(numeric - analytic[i]);
        if (!(err <= atol + rtol * std::abs(double(analytic[i])))) {
            FAIL_CHECK(what << "[" << i << "]: finite difference " << numeric << " vs analytic " << analytic[i]);
            return;
        }
    }
}

/// sum_i r_i * y_i in double: the scalar whose gradient with respect to y is r.
inline double project(const std::vector<float>& y, const std::vector<float>& r) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
    return s;
}

/// After a forward that may have moved parameters to their ops' preferred layouts (oneDNN):
/// each parameter of `st` still holds `before` (what to_host and checkpoints see) and its
/// gradient has its layout (so that optimizers update element by element). Returns how
/// many parameters are no longer in the plain layout.
template <class Ctx, class State>
std::size_t moved_params(Ctx& ctx, State& st, const std::vector<std::vector<float>>& before) {
    REQUIRE(st.params.size() == before.size());
    std::size_t moved = 0;
    for (std::size_t i = 0; i < st.params.size(); ++i) {
        auto* p = st.params[i];
        CAPTURE(p->name);
        CHECK(p->value.to_host(ctx) == before[i]);
        CHECK(p->grad.desc() == p->value.desc());
        moved += !p->value.is_plain();
    }
    return moved;
}

#if MICLE_HAS_ONEDNN && !defined(MICLE_TEST_GPU_PASS)
/// The rule a fully connected layer's weights follow on oneDNN, whatever this CPU's kernels
/// (linear<onednn>::adopt_preferred_layout): their layout leaves no more weight reorders a
/// step than the plain one, the transposed one or any unpadded layout one of oneDNN's
/// three passes prefers (asked here); they moved only if that saves reorders, and never
/// into a padding layout. `x` is the layer's input. Returns whether they moved.
template <class Param>
bool check_linear_layout_rule(context<onednn>& ctx, const Param& w, const dnnl::memory::desc& x, bool bias) {
    using md = dnnl::memory::desc;
    const shape ws = w.value.shape();
    const md plain = onednn_detail::plain_md(ws), any = onednn_detail::any_md(ws),
             y = onednn_detail::plain_md(shape{x.dims()[0], ws[0]}), b = onednn_detail::plain_md(shape{ws[0]});
    const auto reorders = [&](const md& layout) { return ops::linear<onednn>::weight_reorders_per_step(ctx, x, layout, bias); };
    const int now = reorders(w.value.desc()), as_plain = reorders(plain);
    const bool moved = !w.value.is_plain();
    INFO(w.name << ": " << now << " weight reorders a step in its layout, " << as_plain << " in the plain one");
    CHECK(now <= as_plain);
    CHECK(moved == (now < as_plain));
    CHECK(w.value.desc().get_size() == plain.get_size());
    const auto fwd = onednn_compat::ip_fwd_pd(ctx.engine(), x, any, bias ? &b : nullptr, y);
    for (const md& c : {md(onednn_detail::to_dims(ws), dnnl::memory::data_type::f32, dnnl::memory::format_tag::ba),
                        fwd.weights_desc(), onednn_compat::ip_bwd_data_pd(ctx.engine(), x, any, y, fwd).weights_desc(),
                        onednn_compat::ip_bwd_weights_pd(ctx.engine(), x, any, bias ? &b : nullptr, y, fwd).diff_weights_desc()})
        if (c.get_size() == plain.get_size()) CHECK(now <= reorders(c));
    return moved;
}
#endif

/// That running `again` (a second forward) leaves every parameter of `st` in the buffer
/// where it was: weights move to their preferred layout once, not every step.
template <class State, class F>
void check_params_stay(State& st, F&& again) {
    std::vector<const void*> where;
    for (auto* p : st.params) where.push_back(p->value.memory().get_data_handle());
    again();
    for (std::size_t i = 0; i < st.params.size(); ++i) CHECK(st.params[i]->value.memory().get_data_handle() == where[i]);
}

/// The values rounded to bf16 precision (round to nearest even), as floats.
inline std::vector<float> bf16_rounded(std::vector<float> v) {
    for (auto& x : v) x = detail::round_to_bf16(x);
    return v;
}

/// sqrt(sum (a - b)^2 / sum b^2): how far `a` is from `b`, relative to b's size.
inline double relative_distance(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) {
        num += (double(a[k]) - b[k]) * (double(a[k]) - b[k]);
        den += double(b[k]) * b[k];
    }
    return std::sqrt(num / den);
}

/// How far bf16 mixed precision moves a ResNet-18 (base 8, 5 classes, 8 images of 32x32,
/// training mode, a random output gradient) from fp32, next to how far rounding only its
/// weights and input to bf16 moves it in fp32: the network's own sensitivity. At
/// initialisation under a random output gradient it is sensitive: that rounding alone (at
/// most 2^-9 per value) moves its weight gradients by 20-35% (ReLU masks flip, batch-norm
/// statistics of few values shift), so per-element tolerances cannot tell a right bf16
/// gradient from a wrong one; these distances can (a wrong gradient, a layout or type
/// mix-up, is as far as an unrelated vector: about 1.4).
struct bf16_drift {
    double logits_mixed, logits_rounded, grads_mixed, grads_rounded;
};
template <class B>
bf16_drift resnet_bf16_drift(context<B>& lo, context<B>& hi, models::stem_kind stem) {
    models::resnet_config c;
    c.depth = 18;
    c.base_channels = 8;
    c.num_classes = 5;
    c.stem = stem;
    models::resnet<B> a(lo, c, 9), b(hi, c, 9), r(hi, c, 9);
    auto sa = a.state(), sb = b.state(), sr = r.state();
    for (auto* p : sr.params) p->value.assign(hi, bf16_rounded(p->value.to_host(hi)));
    const shape xs{8, 3, 32, 32};
    const auto xv = random_values(xs.numel(), 10);
    const auto xa = tensor<B>::from_host(lo, xs, xv);  // alive until backward: the model keeps a pointer
    const auto& ya = a.forward(lo, xa, true);
    CHECK(ya.dtype() == dtype::f32);  // the head sees fp32 features
    const auto xb = tensor<B>::from_host(hi, xs, xv), xr = tensor<B>::from_host(hi, xs, bf16_rounded(xv));
    const auto yb = b.forward(hi, xb, true).to_host(hi);
    bf16_drift d{};
    d.logits_mixed = relative_distance(ya.to_host(lo), yb);
    d.logits_rounded = relative_distance(r.forward(hi, xr, true).to_host(hi), yb);
    const auto g = random_values(40, 11);
    a.backward(lo, tensor<B>::from_host(lo, {8, 5}, g));
    b.backward(hi, tensor<B>::from_host(hi, {8, 5}, g));
    r.backward(hi, tensor<B>::from_host(hi, {8, 5}, g));
    std::vector<float> ga, gb, gr;
    for (std::size_t i = 0; i < sa.params.size(); ++i) {
        CAPTURE(sa.params[i]->name);
        CHECK(sa.params[i]->value.dtype() == dtype::f32);  // master weights
        CHECK(sa.params[i]->grad.dtype() == dtype::f32);
        auto append = [](std::vector<float>& into, const std::vector<float>& v) { into.insert(into.end(), v.begin(), v.end()); };
        append(ga, sa.params[i]->grad.to_host(lo));
        append(gb, sb.params[i]->grad.to_host(hi));
        append(gr, sr.params[i]->grad.to_host(hi));
    }
    d.grads_mixed = relative_distance(ga, gb);
    d.grads_rounded = relative_distance(gr, gb);
    MESSAGE("distance from fp32 - logits: bf16 " << d.logits_mixed << ", fp32 with bf16-rounded weights and input "
                                               << d.logits_rounded << "; weight gradients: " << d.grads_mixed << ", "
                                               << d.grads_rounded);
    return d;
}

/// The bounds a bf16 backend keeps: gradients within twice the network's own sensitivity
/// (measured on the CPU: 1.3 and 1.6 times), logits within three times (1.6 and 2.5 times;
/// 0.5-1% and 5% of their size).
inline void check_bf16_drift(const bf16_drift& d) {
    CHECK(d.logits_mixed <= 3.0 * d.logits_rounded);
    CHECK(d.logits_mixed < 0.1);
    CHECK(d.grads_mixed <= 2.0 * d.grads_rounded);
    CHECK(d.grads_mixed < 0.6);
}

}  // namespace micle::testing
