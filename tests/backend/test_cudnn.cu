// The GPU backend's own tests. Without a device: the host side of its layout and bf16
// conversions, and the error a context gives. With one: the NHWC storage, the caching
// allocator, TF32 within its tolerance, the fused optimizers against the host ones (values
// and checkpoint state), and bf16 mixed precision against fp32.
#include <cuda_runtime.h>

#include <cstring>

#include "micle/optim/optimizer.hpp"
#include "testing.hpp"
#include "train/learners.hpp"

using namespace micle;
using testing::random_values;

static_assert(Backend<cudnn>);
static_assert(Optimizer<optim::sgd<cudnn>, cudnn>);
static_assert(Optimizer<optim::lars<cudnn>, cudnn>);
static_assert(Optimizer<optim::adamw<cudnn>, cudnn>);

TEST_CASE("cudnn: a rank-4 tensor is stored NHWC, other ranks row-major") {
    const cudnn_detail::layout_map m(shape{2, 3, 2, 2});
    // logical (n, c, h, w) -> stored ((n * H + h) * W + w) * C + c
    for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t c = 0; c < 3; ++c)
            for (std::int64_t p = 0; p < 4; ++p) CHECK(m.stored((n * 3 + c) * 4 + p) == (n * 4 + p) * 3 + c);
    const cudnn_detail::layout_map rows(shape{5, 7});
    for (std::int64_t i = 0; i < 35; ++i) CHECK(rows.stored(i) == i);
}

TEST_CASE("cudnn: bf16 conversion rounds to nearest even, as the reference backend does") {
    auto values = random_values(4096, 5, -1e4f, 1e4f);
    values.insert(values.end(), {0.0f, -0.0f, 1.0f, 1.00390625f, 1.01171875f, 3.0e38f, -1e-40f,
                                 std::numeric_limits<float>::infinity()});
    for (float v : values) {
        CAPTURE(v);
        CHECK(cudnn_detail::from_bf16_bits(cudnn_detail::to_bf16_bits(v)) == detail::round_to_bf16(v));
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(cudnn_detail::from_bf16_bits(cudnn_detail::to_bf16_bits(nan))));
}

MICLE_CUDNN_LEGACY_BEGIN
TEST_CASE("cudnn: the convolution math type follows the data type, the algorithm is cuDNN's first suggestion that fits") {
    using perf = cudnnConvolutionFwdAlgoPerf_t;
    auto make = [](cudnnConvolutionFwdAlgo_t algo, cudnnStatus_t status, std::size_t memory, cudnnDeterminism_t det,
                   cudnnMathType_t math) {
        perf p{};
        p.algo = algo;
        p.status = status;
        p.memory = memory;
        p.determinism = det;
        p.mathType = math;
        return p;
    };
    const std::vector<perf> ranked{
        make(CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DETERMINISTIC, CUDNN_DEFAULT_MATH),
        make(CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, CUDNN_STATUS_SUCCESS, std::size_t(1) << 31, CUDNN_DETERMINISTIC,
             CUDNN_DEFAULT_MATH),
        make(CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_STATUS_SUCCESS, 1024, CUDNN_NON_DETERMINISTIC, CUDNN_TENSOR_OP_MATH),
        make(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_STATUS_SUCCESS, 4096, CUDNN_DETERMINISTIC,
             CUDNN_TENSOR_OP_MATH),
        make(CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_STATUS_SUCCESS, 0, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH),
    };
    cudnn_options o;  // deterministic, 1 GiB workspace: not the failed one, not the 2 GiB one
    CHECK(cudnn_detail::choose_algorithm(ranked, 5, o, true, "forward").algo ==
          CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    o.deterministic = false;
    CHECK(cudnn_detail::choose_algorithm(ranked, 5, o, true, "forward").algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM);
    o.workspace_limit = std::size_t(4) << 30;
    CHECK(cudnn_detail::choose_algorithm(ranked, 5, o, true, "forward").algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD);
    // Without tensor cores (fp32 with TF32 off) only FMA kernels qualify.
    CHECK(cudnn_detail::choose_algorithm(ranked, 5, o, false, "forward").algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    CHECK_THROWS_WITH_AS(cudnn_detail::choose_algorithm(ranked, 4, o, false, "forward"),
                         doctest::Contains("no forward algorithm for this shape"), backend_error);
    // The descriptors' math type, which the heuristics rank by: tensor ops for bf16 data
    // whatever the TF32 setting (CUDNN_DEFAULT_MATH put kernels without tensor cores first,
    // 40-85x slower on an H200), TF32 allowed or not for fp32.
    CHECK(cudnn_detail::conv_math_type(dtype::bf16, true) == CUDNN_TENSOR_OP_MATH);
    CHECK(cudnn_detail::conv_math_type(dtype::bf16, false) == CUDNN_TENSOR_OP_MATH);
    CHECK(cudnn_detail::conv_math_type(dtype::f32, true) == CUDNN_DEFAULT_MATH);
    CHECK(cudnn_detail::conv_math_type(dtype::f32, false) == CUDNN_FMA_MATH);
}
MICLE_CUDNN_LEGACY_END

TEST_CASE("cudnn: a context without a device says so - with one it runs") {
    if (cudnn_detail::device_count() == 0) {
        CHECK_THROWS_WITH_AS(context<cudnn>{}, doctest::Contains("no CUDA device"), backend_error);
        return;
    }
    cudnn_options o;
    o.device = cudnn_detail::device_count();  // one past the last
    CHECK_THROWS_WITH_AS(context<cudnn>{o}, doctest::Contains("does not exist"), backend_error);
    context<cudnn> ctx;
    ctx.synchronize();
}

TEST_CASE("cudnn: device storage is NHWC and the allocator reuses freed blocks") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    context<cudnn> ctx;
    const shape s{2, 3, 2, 2};
    std::vector<float> v(24);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i);
    auto t = tensor<cudnn>::from_host(ctx, s, v);
    std::vector<float> raw(24);
    MICLE_CUDA_CHECK(cudaMemcpy(raw.data(), t.raw(), 96, cudaMemcpyDeviceToHost));
    const cudnn_detail::layout_map m(s);
    for (std::int64_t i = 0; i < 24; ++i) CHECK(raw[static_cast<std::size_t>(m.stored(i))] == v[static_cast<std::size_t>(i)]);
    CHECK(t.to_host(ctx) == v);

    auto& rt = ctx.runtime();
    const void* first = nullptr;
    {
        auto a = tensor<cudnn>::empty(ctx, shape{1000});
        first = a.raw();
        CHECK(rt.bytes_in_use() >= 4000);
    }
    const auto cached = rt.bytes_cached();
    CHECK(cached >= 4000);
    auto b = tensor<cudnn>::empty(ctx, shape{1000});
    CHECK(b.raw() == first);  // the freed block, not a new cudaMalloc
    CHECK(rt.bytes_cached() < cached);
    b.ensure(ctx, shape{10, 100});  // same size: same storage
    CHECK(b.raw() == first);
}

TEST_CASE("cudnn: TF32 convolutions and products stay within TF32's precision of fp32") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    cudnn_options fast;
    fast.allow_tf32 = true;
    context<cudnn> tf32(fast), fp32;
    const shape xs{4, 32, 9, 9}, ws{24, 32, 3, 3};
    const auto xv = random_values(xs.numel(), 1), wv = random_values(ws.numel(), 2);
    auto run = [&](context<cudnn>& ctx) {
        ops::conv2d<cudnn> op({3, 3, 1, 1, 1, 1});
        auto x = tensor<cudnn>::from_host(ctx, xs, xv), w = tensor<cudnn>::from_host(ctx, ws, wv);
        tensor<cudnn> y;
        op.forward(ctx, x, w, nullptr, y);
        return y.to_host(ctx);
    };
    // TF32 keeps 10 mantissa bits of each input: relative errors near 2^-11 per product,
    // averaging down over the 288-term sums.
    testing::expect_close(run(tf32), run(fp32), 0.0, 5e-3, "TF32 conv2d");
}

TEST_CASE("cudnn: find_algorithms (each algorithm measured) computes what the reference does, fp32 and bf16") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    const shape xs{4, 16, 11, 11}, ws{8, 16, 3, 3};
    const ops::conv2d_params p{3, 3, 2, 2, 1, 1};
    const auto xv = random_values(xs.numel(), 5), wv = random_values(ws.numel(), 6);
    const shape ys{4, 8, p.out_h(11), p.out_w(11)};
    const auto dyv = random_values(ys.numel(), 7);
    // y, dx and dw of one forward and backward pass on backend B
    auto run = [&]<class B>(context<B>& ctx) {
        ops::conv2d<B> op(p);
        auto x = tensor<B>::from_host(ctx, xs, xv), w = tensor<B>::from_host(ctx, ws, wv);
        auto dy = tensor<B>::from_host(ctx, ys, dyv);
        tensor<B> y, dx, dw;
        op.forward(ctx, x, w, nullptr, y);
        op.backward_data(ctx, dy, w, dx);
        op.backward_weights(ctx, x, dy, dw, nullptr);
        return std::vector<std::vector<float>>{y.to_host(ctx), dx.to_host(ctx), dw.to_host(ctx)};
    };
    context<reference> rctx;
    const auto want = run(rctx);
    for (const bool bf16 : {false, true}) {
        CAPTURE(bf16);
        cudnn_options o = cudnn_defaults();  // strict fp32 (device_ready turned TF32 off)
        o.find_algorithms = true;
        o.deterministic = false;
        o.bf16 = bf16;
        context<cudnn> ctx(o);
        const auto got = run(ctx);
        // fp32: summation order alone. bf16: inputs rounded to 8 bits (relative 2^-9 each)
        // and bf16 outputs, over sums of 144 (y, dx) to 144 (dw) products: a few 2^-8.
        const double rtol = bf16 ? 2e-2 : 1e-4, atol = bf16 ? 2e-2 : 1e-5;
        testing::expect_close(got[0], want[0], rtol, atol, "y");
        testing::expect_close(got[1], want[1], rtol, atol, "dx");
        testing::expect_close(got[2], want[2], rtol, atol, "dw");
    }
}

namespace {
struct optimizer_case {
    std::vector<shape> shapes{{8, 3, 3, 3}, {8}, {8}, {10, 8}};
    std::vector<nn::param_role> roles{nn::param_role::weight, nn::param_role::norm_scale, nn::param_role::norm_shift,
                                      nn::param_role::weight};
};

/// Runs `steps` updates of Opt on backend B with fixed gradients per step; returns every
/// parameter's values followed by every state buffer.
template <template <class> class Opt, class B>
std::vector<std::vector<float>> run_optimizer(const typename Opt<B>::config& cfg, int steps) {
    context<B> ctx;
    const optimizer_case oc;
    std::vector<nn::parameter<B>> params(oc.shapes.size());
    std::vector<nn::parameter<B>*> ptrs;
    for (std::size_t k = 0; k < params.size(); ++k) {
        params[k].name = "p" + std::to_string(k);
        params[k].role = oc.roles[k];
        params[k].value = tensor<B>::from_host(ctx, oc.shapes[k], random_values(oc.shapes[k].numel(), 10 + k));
        ptrs.push_back(&params[k]);
    }
    Opt<B> opt(cfg, ptrs);
    for (int s = 0; s < steps; ++s) {
        for (std::size_t k = 0; k < params.size(); ++k)
            params[k].grad = tensor<B>::from_host(ctx, oc.shapes[k], random_values(oc.shapes[k].numel(), 100 * s + k));
        opt.step(ctx, 0.1f + 0.05f * float(s));
    }
    std::vector<std::vector<float>> out;
    for (auto& p : params) out.push_back(p.value.to_host(ctx));
    for (auto& e : opt.state()) out.push_back(e.read());
    return out;
}

template <template <class> class Opt>
void compare_optimizer(const typename Opt<reference>::config& cfg, const char* name) {
    const auto want = run_optimizer<Opt, reference>(cfg, 4);
    const auto got = run_optimizer<Opt, cudnn>(cfg, 4);
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k)
        testing::expect_close(got[k], want[k], 1e-5, 1e-6, std::string(name) + " buffer " + std::to_string(k));
}
}  // namespace

TEST_CASE("cudnn: fused SGD, LARS and AdamW updates equal the host optimizers") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    compare_optimizer<optim::sgd>({0.9f, 1e-2f, false, false}, "sgd");
    compare_optimizer<optim::sgd>({0.8f, 1e-2f, true, true}, "sgd nesterov decay_all");
    compare_optimizer<optim::lars>({0.9f, 1e-3f, 0.001f, false, false}, "lars");
    compare_optimizer<optim::lars>({0.9f, 1e-3f, 0.01f, true, true}, "lars nesterov decay_all");
    compare_optimizer<optim::adamw>({0.9f, 0.999f, 1e-8f, 1e-2f, false}, "adamw");
}

TEST_CASE("cudnn: optimizer state written through state() is what the next step uses") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    context<cudnn> ctx;
    nn::parameter<cudnn> p{"w", tensor<cudnn>::from_host(ctx, shape{3}, std::vector<float>{1, 2, 3}),
                           tensor<cudnn>::from_host(ctx, shape{3}, std::vector<float>{0, 0, 0}),
                           nn::param_role::bias};
    optim::sgd<cudnn> opt({0.5f, 0.0f, false, false}, {&p});
    auto st = opt.state();
    REQUIRE(st.size() == 1);
    CHECK(st[0].name == "momentum.w");
    CHECK(st[0].size == 3);
    st[0].write(std::vector<float>{2, 4, 6});
    opt.step(ctx, 1.0f);  // buf = 0.5 * buf + 0, w -= buf
    CHECK(st[0].read() == std::vector<float>{1, 2, 3});
    CHECK(p.value.to_host(ctx) == std::vector<float>{0, 0, 0});
}

TEST_CASE("cudnn: bf16 mixed precision - a ResNet's logits and fp32 weight gradients stay as near fp32 as its own sensitivity allows") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    cudnn_options mixed;
    mixed.allow_tf32 = false;
    mixed.bf16 = true;
    context<cudnn> lo(mixed), hi;  // hi: the test default, strict fp32
    for (const auto stem : {models::stem_kind::small, models::stem_kind::imagenet}) {
        CAPTURE(int(stem));
        testing::check_bf16_drift(testing::resnet_bf16_drift(lo, hi, stem));
    }
}

TEST_CASE("cudnn: bf16 mixed precision - LARS drives the SimCLR loss down as in fp32") {
    MICLE_SKIP_WITHOUT_DEVICE(cudnn);
    auto run = [&](bool bf16) {
        cudnn_options o;
        o.allow_tf32 = false;
        o.bf16 = bf16;
        return testing::fixed_batch_losses<cudnn>(o);
    };
    const auto mixed = run(true), full = run(false);
    testing::check_tracks_fp32(mixed, full);
}
