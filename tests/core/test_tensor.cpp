#include "testing.hpp"

using namespace micle;
using testing::random_values;

static_assert(Backend<reference>);
#if MICLE_HAS_ONEDNN
static_assert(Backend<onednn>);
#endif

TEST_CASE_TEMPLATE("tensor: host round trip is exact, clone is independent", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    const shape s{2, 3, 5, 7};
    const auto v = random_values(s.numel(), 1);
    auto t = tensor<B>::from_host(ctx, s, v);
    CHECK(t.shape() == s);
    CHECK(t.dtype() == dtype::f32);
    CHECK(t.to_host(ctx) == v);

    auto c = t.clone(ctx);
    c.fill(ctx, 2.5f);
    CHECK(t.to_host(ctx) == v);
    CHECK(c.to_host(ctx) == std::vector<float>(v.size(), 2.5f));

    auto z = tensor<B>::zeros(ctx, s);
    CHECK(z.to_host(ctx) == std::vector<float>(v.size(), 0.0f));

    auto moved = std::move(t);
    CHECK(moved.to_host(ctx) == v);
}

TEST_CASE_TEMPLATE("tensor: bf16 storage rounds to nearest even", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    // 1 + 2^-8 is exactly halfway between two bf16 values and rounds to even (1.0);
    // 1 + 3 * 2^-9 rounds up to 1 + 2^-7; 3.0 is exact.
    const std::vector<float> v{1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-9f, 3.0f, -0.0f};
    auto t = tensor<B>::from_host(ctx, shape{4}, v, dtype::bf16);
    CHECK(t.dtype() == dtype::bf16);
    CHECK(t.to_host(ctx) == std::vector<float>{1.0f, 1.0f + 0x1p-7f, 3.0f, -0.0f});
}

TEST_CASE_TEMPLATE("tensor: from_host with the wrong number of values names both", B, MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    const std::vector<float> v(11);
    CHECK_THROWS_WITH_AS(tensor<B>::from_host(ctx, shape{3, 4}, v),
                         doctest::Contains("11 values for shape [3, 4] (12 elements)"), shape_error);
}

#if MICLE_HAS_ONEDNN
TEST_CASE("tensor<onednn>: plain -> blocked -> plain layout round trips are exact") {
    using tag = dnnl::memory::format_tag;
    context<onednn> ctx;
    struct layout_case {
        shape s;
        tag blocked;
    };
    // Channel counts that are and are not multiples of the block, odd spatial sizes.
    const layout_case cases[] = {{{2, 17, 7, 7}, tag::nChw16c}, {{3, 32, 5, 3}, tag::nChw16c},
                                 {{1, 5, 9, 9}, tag::nChw8c},   {{2, 3, 4, 4}, tag::nhwc},
                                 {{19, 17, 3, 3}, tag::OIhw16i16o}, {{8, 3, 7, 7}, tag::Ohwi16o}};
    for (const auto& c : cases) {
        CAPTURE(c.s);
        const auto v = random_values(c.s.numel(), 7);
        auto plain = tensor<onednn>::from_host(ctx, c.s, v);
        CHECK(plain.is_plain());
        const dnnl::memory::desc blocked_md(onednn_detail::to_dims(c.s), dnnl::memory::data_type::f32, c.blocked);
        auto blocked = plain.to_layout(ctx, blocked_md);
        CHECK_FALSE(blocked.is_plain());
        CHECK(blocked.shape() == c.s);
        CHECK_THROWS_AS(blocked.data(), shape_error);
        CHECK(blocked.to_host(ctx) == v);
        auto back = blocked.to_layout(ctx, onednn_detail::plain_md(c.s));
        CHECK(back.is_plain());
        CHECK(std::equal(v.begin(), v.end(), back.data()));
        // zeros() clears the padding of blocked layouts too
        auto z = tensor<onednn>::empty(ctx, blocked_md);
        z.fill(ctx, 0.0f);
        CHECK(z.to_host(ctx) == std::vector<float>(v.size(), 0.0f));
    }
}

TEST_CASE("tensor<onednn>: to_layout rejects a descriptor of other dims") {
    context<onednn> ctx;
    auto t = tensor<onednn>::zeros(ctx, shape{2, 3});
    CHECK_THROWS_WITH_AS(t.to_layout(ctx, onednn_detail::plain_md(shape{3, 2})), doctest::Contains("do not match shape [2, 3]"),
                         shape_error);
}
#endif

TEST_CASE_TEMPLATE("upload_queue: batches come out in order, one staged ahead, as from_host makes them", B,
                   MICLE_ALL_BACKENDS) {
    MICLE_SKIP_WITHOUT_DEVICE(B);
    context<B> ctx;
    upload_queue<B> q;
    CHECK_THROWS_WITH_AS(q.next(ctx), doctest::Contains("without a staged batch"), shape_error);
    const shape images{3, 2, 4, 5}, rows{6, 7};
    std::vector<std::vector<float>> batches;
    for (int k = 0; k < 5; ++k) batches.push_back(random_values(images.numel(), 40 + k));
    q.stage(ctx, images, batches[0]);
    for (int k = 0; k < 5; ++k) {
        CAPTURE(k);
        const tensor<B>& x = q.next(ctx);
        if (k + 1 < 5) q.stage(ctx, images, batches[std::size_t(k + 1)]);  // in flight while x is used
        CHECK(x.shape() == images);
        CHECK(x.to_host(ctx) == tensor<B>::from_host(ctx, images, batches[std::size_t(k)]).to_host(ctx));
    }
    CHECK(q.staged() == 0);
    // Any rank, and the shape may change from batch to batch.
    const auto r = random_values(rows.numel(), 50);
    q.stage(ctx, rows, r);
    q.stage(ctx, images, batches[0]);
    CHECK_THROWS_WITH_AS(q.stage(ctx, rows, r), doctest::Contains("two batches are staged"), shape_error);
    CHECK(q.next(ctx).to_host(ctx) == r);
    CHECK(q.next(ctx).to_host(ctx) == batches[0]);
}
