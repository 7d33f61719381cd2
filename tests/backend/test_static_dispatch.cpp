// The default backend comes from the generated config header, and switching backends is a
// template argument: the same generic function runs on each. Both are compared with a
// convolution written out here, so that a build whose default is the reference backend
// still compares two things.
#include <algorithm>

#include "testing.hpp"

using namespace micle;

namespace {
template <class B>
std::vector<float> conv_relu(const std::vector<float>& xv, const std::vector<float>& wv) {
    context<B> ctx;
    tensor<B> y, z;
    ops::conv2d<B>({3, 3, 1, 1, 1, 1}).forward(ctx, tensor<B>::from_host(ctx, {1, 2, 4, 4}, xv),
                                             tensor<B>::from_host(ctx, {3, 2, 3, 3}, wv), nullptr, y);
    ops::relu<B>().forward(ctx, y, z);
    return z.to_host(ctx);
}

/// The same 3x3 convolution (padding 1, 2 -> 3 channels on 4x4) and ReLU, by its definition.
std::vector<float> conv_relu_by_hand(const std::vector<float>& x, const std::vector<float>& w) {
    std::vector<float> z(3 * 16);
    for (int o = 0; o < 3; ++o)
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                double s = 0;
                for (int c = 0; c < 2; ++c)
                    for (int ki = 0; ki < 3; ++ki)
                        for (int kj = 0; kj < 3; ++kj) {
                            const int yi = i + ki - 1, xj = j + kj - 1;
                            if (yi >= 0 && yi < 4 && xj >= 0 && xj < 4)
                                s += double(x[std::size_t((c * 4 + yi) * 4 + xj)]) * w[std::size_t(((o * 2 + c) * 3 + ki) * 3 + kj)];
                        }
                z[std::size_t((o * 4 + i) * 4 + j)] = float(std::max(s, 0.0));
            }
    return z;
}
}  // namespace

TEST_CASE("default_backend is the one CMake chose, and a generic function runs on every backend") {
    CHECK(default_backend::name == MICLE_DEFAULT_BACKEND_NAME);
    static_assert(Backend<default_backend>);
    MICLE_SKIP_WITHOUT_DEVICE(default_backend);  // a GPU default on a machine without one
    const auto xv = testing::random_values(32, 1), wv = testing::random_values(54, 2);
    const auto want = conv_relu_by_hand(xv, wv);
    REQUIRE(std::count(want.begin(), want.end(), 0.0f) < 40);  // ReLU leaves values to compare
    testing::expect_close(conv_relu<default_backend>(xv, wv), want, 1e-5, 1e-6, "conv+relu, default backend");
    testing::expect_close(conv_relu<reference>(xv, wv), want, 1e-5, 1e-6, "conv+relu, reference");
}
