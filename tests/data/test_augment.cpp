#include <cmath>

#include "micle/data/augment.hpp"
#include "testing.hpp"

using namespace micle;
using namespace micle::data;

namespace {
image ramp(std::int64_t c, std::int64_t h, std::int64_t w) {
    image img(c, h, w);
    for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = float(i % 97) / 96.0f;
    return img;
}
}  // namespace

TEST_CASE("augment: the SimCLR preset draws parameters with the documented distributions") {
    const auto cfg = augment_config::simclr(32);
    rng gen(1);
    const int n = 20000;
    int flips = 0, jitters = 0, grays = 0, blurs = 0;
    double area_sum = 0, log_ratio_sum = 0;
    float area_min = 1, area_max = 0, sigma_min = 10, sigma_max = 0, b_min = 10, b_max = 0, h_min = 1, h_max = -1;
    for (int i = 0; i < n; ++i) {
        const auto p = sample(cfg, 224, 224, gen);
        const float area = p.height * p.width / (224.0f * 224.0f);
        area_sum += area;
        area_min = std::min(area_min, area);
        area_max = std::max(area_max, area);
        log_ratio_sum += std::log(p.width / p.height);
        CHECK(p.top >= 0);
        CHECK(p.left >= 0);
        CHECK(p.top + p.height <= 224);
        CHECK(p.left + p.width <= 224);
        flips += p.flip;
        grays += p.grayscale;
        if (p.jitter) {
            ++jitters;
            b_min = std::min(b_min, p.brightness);
            b_max = std::max(b_max, p.brightness);
            h_min = std::min(h_min, p.hue);
            h_max = std::max(h_max, p.hue);
        }
        if (p.blur) {
            ++blurs;
            sigma_min = std::min(sigma_min, p.blur_sigma);
            sigma_max = std::max(sigma_max, p.blur_sigma);
        }
        CHECK(p.rotation == 0.0f);
    }
    // Frequencies within 4 standard deviations of p.
    auto near = [&](int count, double p) { return std::abs(count - n * p) < 4 * std::sqrt(n * p * (1 - p)); };
    CHECK(near(flips, 0.5));
    CHECK(near(jitters, 0.8));
    CHECK(near(grays, 0.2));
    CHECK(near(blurs, 0.5));
    // Crop areas in [0.08, 1] (rounding of the box sides moves them slightly); the mean of a
    // uniform area fraction is 0.54, lowered a little by the rejected large-area draws.
    CHECK(area_min > 0.07f);
    CHECK(area_max <= 1.0f);
    CHECK(area_sum / n > 0.45);
    CHECK(area_sum / n < 0.56);
    CHECK(std::abs(log_ratio_sum / n) < 0.01);  // log-uniform aspect, symmetric around 1
    CHECK(b_min >= 0.2f);
    CHECK(b_max <= 1.8f);  // brightness 0.8 * s with s = 1
    CHECK(b_max > 1.75f);
    CHECK(h_min >= -0.2f);
    CHECK(h_max <= 0.2f);
    CHECK(sigma_min >= 0.1f);
    CHECK(sigma_max <= 2.0f);
}

TEST_CASE("augment: the chest X-ray preset rotates up to 45 degrees, jitters at strength 0.5, never blurs") {
    const auto cfg = augment_config::chest_xray(64);
    rng gen(2);
    float rmin = 0, rmax = 0, cmin = 10, cmax = 0;
    for (int i = 0; i < 5000; ++i) {
        const auto p = sample(cfg, 100, 80, gen);
        rmin = std::min(rmin, p.rotation);
        rmax = std::max(rmax, p.rotation);
        CHECK_FALSE(p.blur);
        CHECK_FALSE(p.grayscale);
        if (p.jitter) {
            cmin = std::min(cmin, p.contrast);
            cmax = std::max(cmax, p.contrast);
        }
    }
    CHECK(rmin < -44.0f);
    CHECK(rmin >= -45.0f);
    CHECK(rmax > 44.0f);
    CHECK(rmax <= 45.0f);
    CHECK(cmin >= 0.6f);  // contrast 0.8 * 0.5 = 0.4 around 1
    CHECK(cmax <= 1.4f);
    CHECK(cmax > 1.35f);
}

TEST_CASE("augment: each operation does what it says") {
    const image img = ramp(3, 6, 8);
    SUBCASE("a full-image crop at the same size is the identity, a flip mirrors") {
        const image same = crop_resize(img, 0, 0, 6, 8, 6, 8, interpolation::bilinear);
        testing::expect_close(same.pixels, img.pixels, 1e-6, 1e-6, "identity crop");
        const image bic = crop_resize(img, 0, 0, 6, 8, 6, 8, interpolation::bicubic);
        testing::expect_close(bic.pixels, img.pixels, 1e-5, 1e-5, "identity crop (bicubic)");
        const image flipped = crop_resize(img, 0, 0, 6, 8, 6, 8, interpolation::bilinear, 0.0f, true);
        for (std::int64_t y = 0; y < 6; ++y)
            for (std::int64_t x = 0; x < 8; ++x) CHECK(flipped.at(1, y, x) == doctest::Approx(img.at(1, y, 7 - x)));
    }
    SUBCASE("a quarter turn of a square image moves rows to columns") {
        const image sq = ramp(1, 5, 5);
        const image r = crop_resize(sq, 0, 0, 5, 5, 5, 5, interpolation::bilinear, 90.0f);
        for (std::int64_t y = 0; y < 5; ++y)
            for (std::int64_t x = 0; x < 5; ++x) CHECK(r.at(0, y, x) == doctest::Approx(sq.at(0, 4 - x, y)).epsilon(1e-4));
    }
    SUBCASE("grayscale uses ITU-R 601 luma; saturation 0 equals grayscale") {
        image g = img, s = img;
        to_grayscale(g);
        adjust_saturation(s, 0.0f);
        const float l = 0.299f * img.at(0, 2, 3) + 0.587f * img.at(1, 2, 3) + 0.114f * img.at(2, 2, 3);
        for (std::int64_t c = 0; c < 3; ++c) CHECK(g.at(c, 2, 3) == doctest::Approx(l));
        testing::expect_close(s.pixels, g.pixels, 1e-6, 1e-6, "saturation 0");
    }
    SUBCASE("hue: a zero or full-turn shift changes nothing; a third of a turn cycles R->G->B") {
        image h0 = img, h1 = img;
        adjust_hue(h0, 0.0f);
        testing::expect_close(h0.pixels, img.pixels, 1e-5, 1e-5, "hue 0");
        image red(3, 1, 1);
        red.pixels = {0.8f, 0.1f, 0.1f};
        adjust_hue(red, 1.0f / 3.0f);
        CHECK(red.pixels[0] == doctest::Approx(0.1f));
        CHECK(red.pixels[1] == doctest::Approx(0.8f));
        CHECK(red.pixels[2] == doctest::Approx(0.1f));
        adjust_hue(h1, 0.5f);  // two half turns: a full one
        adjust_hue(h1, 0.5f);
        testing::expect_close(h1.pixels, img.pixels, 1e-5, 1e-5, "hue, a full turn");
        image half = img;  // a half turn alone does move the colours
        adjust_hue(half, 0.5f);
        double moved = 0;
        for (std::size_t i = 0; i < half.pixels.size(); ++i) moved += std::abs(half.pixels[i] - img.pixels[i]);
        CHECK(moved > 0.1);
    }
    SUBCASE("brightness scales and clamps, contrast keeps the mean gray level") {
        image b = img;
        adjust_brightness(b, 2.0f);
        CHECK(b.at(0, 0, 5) == doctest::Approx(std::min(1.0f, 2 * img.at(0, 0, 5))));
        image hi(1, 1, 3);  // doubled: one stays below 1, two must clamp to exactly 1
        hi.pixels = {0.3f, 0.6f, 0.95f};
        adjust_brightness(hi, 2.0f);
        CHECK(hi.pixels[0] == doctest::Approx(0.6f));
        CHECK(hi.pixels[1] == 1.0f);
        CHECK(hi.pixels[2] == 1.0f);
        image flat(1, 4, 4);
        std::fill(flat.pixels.begin(), flat.pixels.end(), 0.3f);
        adjust_contrast(flat, 0.1f);
        CHECK(flat.pixels[7] == doctest::Approx(0.3f));
    }
    SUBCASE("blur keeps a constant image constant and smooths an impulse symmetrically") {
        image flat(1, 20, 20);
        std::fill(flat.pixels.begin(), flat.pixels.end(), 0.6f);
        gaussian_blur(flat, 1.5f);
        for (float v : flat.pixels) CHECK(v == doctest::Approx(0.6f));
        image dot(1, 21, 21);
        dot.at(0, 10, 10) = 1.0f;
        gaussian_blur(dot, 1.0f);
        CHECK(dot.at(0, 10, 10) < 1.0f);
        CHECK(dot.at(0, 10, 9) == doctest::Approx(dot.at(0, 10, 11)));
        CHECK(dot.at(0, 9, 10) == doctest::Approx(dot.at(0, 11, 10)));
    }
    SUBCASE("normalisation") {
        image n = img;
        normalize(n, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f});
        CHECK(n.at(2, 1, 1) == doctest::Approx((img.at(2, 1, 1) - 0.5f) / 0.25f));
        CHECK_THROWS_AS(normalize(n, {0.5f}, {0.25f}), value_error);
    }
}

TEST_CASE("augment: grayscale-only operations are no-ops on 1-channel images, and results are seeded") {
    const image gray = ramp(1, 16, 16);
    image s = gray;
    adjust_saturation(s, 0.0f);
    adjust_hue(s, 0.3f);
    to_grayscale(s);
    CHECK(s.pixels == gray.pixels);
    const auto cfg = augment_config::simclr(12);
    rng a(5), b(5), c(6);
    const auto x = augment(gray, cfg, a), y = augment(gray, cfg, b), z = augment(gray, cfg, c);
    CHECK(x.pixels == y.pixels);
    CHECK(x.pixels != z.pixels);
    CHECK(x.channels == 1);
    CHECK(x.height == 12);
}
