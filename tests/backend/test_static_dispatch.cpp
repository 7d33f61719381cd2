// The default backend comes from the generated config header, and switching backends is a
// template argument: the same generic function runs on each.
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
}  // namespace

TEST_CASE("default_backend is the one CMake chose, and a generic function runs on every backend") {
    CHECK(default_backend::name == MICLE_DEFAULT_BACKEND_NAME);
    static_assert(Backend<default_backend>);
    MICLE_SKIP_WITHOUT_DEVICE(default_backend);  // a GPU default on a machine without one
    const auto xv = testing::random_values(32, 1), wv = testing::random_values(54, 2);
    testing::expect_close(conv_relu<default_backend>(xv, wv), conv_relu<reference>(xv, wv), 1e-5, 1e-6, "conv+relu");
}
