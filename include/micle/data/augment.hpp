#pragma once
// Host-side image augmentations, seeded. Each pipeline draws all its random parameters
// first (`sample`), then applies them (`apply`), so tests can check the distributions of
// what is drawn and, separately, what each operation does.
//
// Presets (Azizi et al. and SimCLR):
//   simclr(size)     random resized crop (area 0.08-1, aspect 3/4-4/3), flip, colour
//                    jitter strength 1 with p 0.8, grayscale p 0.2, Gaussian blur p 0.5
//                    (sigma 0.1-2, kernel 10% of the side) - used for dermatology
//   chest_xray(size) random resized crop, flip, colour jitter strength 0.5 (p 0.8),
//                    rotation up to 45 degrees, no blur
//   finetune(size)   crop (area 0.5-1), flip, rotation up to 20 degrees, jitter 0.5
//                    (p 0.5), blur p 0.2
//   eval(size)       resize only
// Saturation, hue and grayscale need colour: on 1-channel images they are no-ops (said
// once on stderr).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <numbers>
#include <vector>

#include "micle/core/rng.hpp"
#include "micle/data/image.hpp"

namespace micle::data {

enum class interpolation : std::uint8_t { bilinear, bicubic };

struct augment_config {
    std::int64_t size = 224;  ///< output height and width
    bool random_crop = true;
    float crop_area_min = 0.08f, crop_area_max = 1.0f;
    float crop_ratio_min = 3.0f / 4.0f, crop_ratio_max = 4.0f / 3.0f;
    interpolation interp = interpolation::bilinear;
    float flip_p = 0.5f;
    float jitter_strength = 1.0f;  ///< SimCLR's s: brightness/contrast/saturation 0.8 s, hue 0.2 s
    float jitter_p = 0.8f;
    float grayscale_p = 0.2f;
    float blur_p = 0.5f;
    float blur_sigma_min = 0.1f, blur_sigma_max = 2.0f;
    float rotation_degrees = 0.0f;  ///< uniform in [-deg, +deg]
    std::vector<float> mean, stddev; ///< per-channel normalisation (empty: none)

    static augment_config simclr(std::int64_t size) {
        augment_config c;
        c.size = size;
        return c;
    }
    static augment_config chest_xray(std::int64_t size) {
        augment_config c;
        c.size = size;
        c.jitter_strength = 0.5f;
        c.grayscale_p = 0.0f;
        c.blur_p = 0.0f;
        c.rotation_degrees = 45.0f;
        return c;
    }
    static augment_config finetune(std::int64_t size) {
        augment_config c;
        c.size = size;
        c.crop_area_min = 0.5f;
        c.jitter_strength = 0.5f;
        c.jitter_p = 0.5f;
        c.grayscale_p = 0.0f;
        c.blur_p = 0.2f;
        c.rotation_degrees = 20.0f;
        return c;
    }
    static augment_config eval(std::int64_t size) {
        augment_config c;
        c.size = size;
        c.random_crop = false;
        c.flip_p = c.jitter_p = c.grayscale_p = c.blur_p = 0.0f;
        return c;
    }
};

/// Everything one augmentation of one image draws.
struct augment_params {
    float top = 0, left = 0, height = 0, width = 0;  ///< crop box in source pixels
    bool flip = false;
    bool jitter = false;
    std::array<int, 4> jitter_order{0, 1, 2, 3};     ///< brightness, contrast, saturation, hue
    float brightness = 1, contrast = 1, saturation = 1, hue = 0;
    bool grayscale = false;
    bool blur = false;
    float blur_sigma = 0;
    float rotation = 0;  ///< degrees
};

namespace augment_detail {
inline void say_once_grayscale() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::fprintf(stderr, "micle: saturation, hue and random grayscale are no-ops on 1-channel images\n");
    });
}
inline float clamp01(float v) { return std::min(1.0f, std::max(0.0f, v)); }

inline float cubic(float x) {  // Keys cubic convolution, a = -0.5 (PIL/torchvision bicubic)
    x = std::abs(x);
    constexpr float a = -0.5f;
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

/// Samples plane `p` (h x w) at (y, x), edges clamped.
inline float sample(const float* p, std::int64_t h, std::int64_t w, float y, float x, interpolation interp) {
    if (interp == interpolation::bicubic) {
        const float fy = std::floor(y), fx = std::floor(x);
        float acc = 0;
        for (int dy = -1; dy <= 2; ++dy) {
            const auto yy = std::clamp<std::int64_t>(std::int64_t(fy) + dy, 0, h - 1);
            const float wy = cubic(y - (fy + float(dy)));
            for (int dx = -1; dx <= 2; ++dx) {
                const auto xx = std::clamp<std::int64_t>(std::int64_t(fx) + dx, 0, w - 1);
                acc += wy * cubic(x - (fx + float(dx))) * p[yy * w + xx];
            }
        }
        return acc;
    }
    y = std::clamp(y, 0.0f, float(h - 1));
    x = std::clamp(x, 0.0f, float(w - 1));
    const auto y0 = std::int64_t(y), x0 = std::int64_t(x);
    const auto y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
    const float ty = y - float(y0), tx = x - float(x0);
    const float a = p[y0 * w + x0] + tx * (p[y0 * w + x1] - p[y0 * w + x0]);
    const float b = p[y1 * w + x0] + tx * (p[y1 * w + x1] - p[y1 * w + x0]);
    return a + ty * (b - a);
}

inline float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }
}  // namespace augment_detail

/// torchvision's RandomResizedCrop box: up to 10 tries of an area fraction and a
/// log-uniform aspect ratio that fit, else the central crop with the ratio clamped.
inline void sample_crop(const augment_config& c, std::int64_t h, std::int64_t w, rng& gen, augment_params& p) {
    if (!c.random_crop) {
        p.top = p.left = 0;
        p.height = float(h);
        p.width = float(w);
        return;
    }
    const double area = double(h) * double(w);
    const double lr0 = std::log(c.crop_ratio_min), lr1 = std::log(c.crop_ratio_max);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * gen.uniform(c.crop_area_min, c.crop_area_max);
        const double ratio = std::exp(lr0 + (lr1 - lr0) * gen.uniform());
        const auto cw = std::int64_t(std::lround(std::sqrt(target * ratio)));
        const auto ch = std::int64_t(std::lround(std::sqrt(target / ratio)));
        if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
            p.top = float(gen.below(std::uint64_t(h - ch + 1)));
            p.left = float(gen.below(std::uint64_t(w - cw + 1)));
            p.height = float(ch);
            p.width = float(cw);
            return;
        }
    }
    const double in_ratio = double(w) / double(h);
    double cw = double(w), ch = double(h);
    if (in_ratio < c.crop_ratio_min)
        ch = std::round(cw / c.crop_ratio_min);
    else if (in_ratio > c.crop_ratio_max)
        cw = std::round(ch * c.crop_ratio_max);
    p.height = float(ch);
    p.width = float(cw);
    p.top = float((double(h) - ch) / 2);
    p.left = float((double(w) - cw) / 2);
}

/// Draws every parameter of one augmentation of an h x w image.
inline augment_params sample(const augment_config& c, std::int64_t h, std::int64_t w, rng& gen) {
    augment_params p;
    sample_crop(c, h, w, gen, p);
    p.flip = gen.bernoulli(c.flip_p);
    p.jitter = c.jitter_strength > 0 && gen.bernoulli(c.jitter_p);
    if (p.jitter) {
        const float s = c.jitter_strength, b = 0.8f * s, k = 0.8f * s, sat = 0.8f * s, hue = 0.2f * s;
        p.brightness = gen.uniform(std::max(0.0f, 1 - b), 1 + b);
        p.contrast = gen.uniform(std::max(0.0f, 1 - k), 1 + k);
        p.saturation = gen.uniform(std::max(0.0f, 1 - sat), 1 + sat);
        p.hue = gen.uniform(-std::min(hue, 0.5f), std::min(hue, 0.5f));
        std::shuffle(p.jitter_order.begin(), p.jitter_order.end(), gen);
    }
    p.grayscale = gen.bernoulli(c.grayscale_p);
    p.blur = gen.bernoulli(c.blur_p);
    if (p.blur) p.blur_sigma = gen.uniform(c.blur_sigma_min, c.blur_sigma_max);
    if (c.rotation_degrees > 0) p.rotation = gen.uniform(-c.rotation_degrees, c.rotation_degrees);
    return p;
}

// ---------------------------------------------------------------- the operations

/// Crops the box and resizes it to out_h x out_w; with `rotation` (degrees) the sampling
/// grid is rotated about the box centre and points outside the image are 0.
inline image crop_resize(const image& in, float top, float left, float height, float width, std::int64_t out_h,
                         std::int64_t out_w, interpolation interp, float rotation = 0.0f, bool flip = false) {
    image out(in.channels, out_h, out_w, in.bits);
    const float sy = height / float(out_h), sx = width / float(out_w);
    const float cy = top + height / 2, cx = left + width / 2;
    const double rad = double(rotation) * std::numbers::pi / 180.0;
    const float cr = float(std::cos(rad)), sr = float(std::sin(rad));
    for (std::int64_t c = 0; c < in.channels; ++c) {
        const float* src = in.channel(c);
        float* dst = out.channel(c);
        for (std::int64_t y = 0; y < out_h; ++y)
            for (std::int64_t x = 0; x < out_w; ++x) {
                const std::int64_t xo = flip ? out_w - 1 - x : x;
                // offset from the box centre in source pixels, then rotated
                const float dy = (float(y) + 0.5f) * sy - height / 2, dx = (float(xo) + 0.5f) * sx - width / 2;
                const float ry = cr * dy - sr * dx, rx = sr * dy + cr * dx;
                const float py = cy + ry - 0.5f, px = cx + rx - 0.5f;
                if (rotation != 0.0f && (py < -0.5f || py > float(in.height) - 0.5f || px < -0.5f || px > float(in.width) - 0.5f)) {
                    dst[y * out_w + x] = 0.0f;
                    continue;
                }
                dst[y * out_w + x] = augment_detail::sample(src, in.height, in.width, py, px, interp);
            }
    }
    return out;
}

inline void adjust_brightness(image& img, float f) {
    for (auto& v : img.pixels) v = augment_detail::clamp01(v * f);
}

/// Blends with the mean of the image's grayscale version (torchvision's adjust_contrast).
inline void adjust_contrast(image& img, float f) {
    double mean = 0;
    const auto n = img.plane();
    if (img.channels == 3) {
        for (std::int64_t i = 0; i < n; ++i) mean += augment_detail::luma(img.channel(0)[i], img.channel(1)[i], img.channel(2)[i]);
    } else {
        for (std::int64_t i = 0; i < n; ++i) mean += img.channel(0)[i];
    }
    const float m = float(mean / double(n));
    for (auto& v : img.pixels) v = augment_detail::clamp01(m + f * (v - m));
}

inline void to_grayscale(image& img) {
    if (img.channels != 3) {
        augment_detail::say_once_grayscale();
        return;
    }
    for (std::int64_t i = 0; i < img.plane(); ++i) {
        const float l = augment_detail::luma(img.channel(0)[i], img.channel(1)[i], img.channel(2)[i]);
        img.channel(0)[i] = img.channel(1)[i] = img.channel(2)[i] = l;
    }
}

inline void adjust_saturation(image& img, float f) {
    if (img.channels != 3) {
        augment_detail::say_once_grayscale();
        return;
    }
    for (std::int64_t i = 0; i < img.plane(); ++i) {
        const float l = augment_detail::luma(img.channel(0)[i], img.channel(1)[i], img.channel(2)[i]);
        for (std::int64_t c = 0; c < 3; ++c) img.channel(c)[i] = augment_detail::clamp01(l + f * (img.channel(c)[i] - l));
    }
}

/// Rotates the hue by `shift` turns (in [-0.5, 0.5]) through HSV.
inline void adjust_hue(image& img, float shift) {
    if (img.channels != 3) {
        augment_detail::say_once_grayscale();
        return;
    }
    for (std::int64_t i = 0; i < img.plane(); ++i) {
        float r = img.channel(0)[i], g = img.channel(1)[i], b = img.channel(2)[i];
        const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
        if (d <= 0) continue;
        float h = mx == r ? (g - b) / d : (mx == g ? 2 + (b - r) / d : 4 + (r - g) / d);
        h = h / 6 + shift;
        h -= std::floor(h);
        const float s = d / mx, v = mx;
        const float hh = h * 6;
        const int sector = std::min(5, int(hh));
        const float f = hh - float(sector), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
        switch (sector) {
            case 0: r = v, g = t, b = p; break;
            case 1: r = q, g = v, b = p; break;
            case 2: r = p, g = v, b = t; break;
            case 3: r = p, g = q, b = v; break;
            case 4: r = t, g = p, b = v; break;
            default: r = v, g = p, b = q; break;
        }
        img.channel(0)[i] = r;
        img.channel(1)[i] = g;
        img.channel(2)[i] = b;
    }
}

/// Separable Gaussian blur, kernel side the odd number nearest 10% of the image side
/// (at least 3), edges reflected.
inline void gaussian_blur(image& img, float sigma) {
    auto k = std::max<std::int64_t>(3, std::int64_t(std::lround(0.1 * double(std::min(img.height, img.width)))));
    if (k % 2 == 0) ++k;
    const std::int64_t r = k / 2;
    std::vector<float> w(static_cast<std::size_t>(k));
    float sum = 0;
    for (std::int64_t i = -r; i <= r; ++i) sum += w[std::size_t(i + r)] = std::exp(-float(i * i) / (2 * sigma * sigma));
    for (auto& v : w) v /= sum;
    auto reflect = [](std::int64_t i, std::int64_t n) {
        if (n == 1) return std::int64_t{0};
        while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
        return i;
    };
    std::vector<float> tmp(std::size_t(img.plane()));
    for (std::int64_t c = 0; c < img.channels; ++c) {
        float* p = img.channel(c);
        for (std::int64_t y = 0; y < img.height; ++y)
            for (std::int64_t x = 0; x < img.width; ++x) {
                float acc = 0;
                for (std::int64_t i = -r; i <= r; ++i) acc += w[std::size_t(i + r)] * p[y * img.width + reflect(x + i, img.width)];
                tmp[std::size_t(y * img.width + x)] = acc;
            }
        for (std::int64_t y = 0; y < img.height; ++y)
            for (std::int64_t x = 0; x < img.width; ++x) {
                float acc = 0;
                for (std::int64_t i = -r; i <= r; ++i)
                    acc += w[std::size_t(i + r)] * tmp[std::size_t(reflect(y + i, img.height) * img.width + x)];
                p[y * img.width + x] = acc;
            }
    }
}

inline void normalize(image& img, const std::vector<float>& mean, const std::vector<float>& stddev) {
    if (mean.empty()) return;
    check<value_error>(std::int64_t(mean.size()) == img.channels && stddev.size() == mean.size(), "normalize: ",
                       mean.size(), " means and ", stddev.size(), " deviations for ", img.channels, " channels");
    for (std::int64_t c = 0; c < img.channels; ++c) {
        check<value_error>(stddev[std::size_t(c)] > 0, "normalize: standard deviation must be positive");
        const float m = mean[std::size_t(c)], inv = 1.0f / stddev[std::size_t(c)];
        float* p = img.channel(c);
        for (std::int64_t i = 0; i < img.plane(); ++i) p[i] = (p[i] - m) * inv;
    }
}

/// Applies drawn parameters: crop + rotation + flip in one resampling, then colour jitter
/// in its drawn order, grayscale, blur and normalisation.
inline image apply(const image& in, const augment_params& p, const augment_config& c) {
    image out = crop_resize(in, p.top, p.left, p.height, p.width, c.size, c.size, c.interp, p.rotation, p.flip);
    if (p.jitter)
        for (int op : p.jitter_order) {
            switch (op) {
                case 0: adjust_brightness(out, p.brightness); break;
                case 1: adjust_contrast(out, p.contrast); break;
                case 2: adjust_saturation(out, p.saturation); break;
                default: adjust_hue(out, p.hue); break;
            }
        }
    if (p.grayscale) to_grayscale(out);
    if (p.blur) gaussian_blur(out, p.blur_sigma);
    normalize(out, c.mean, c.stddev);
    return out;
}

/// One augmentation of `in`, drawn from `gen`.
inline image augment(const image& in, const augment_config& c, rng& gen) {
    check<value_error>(in.height > 0 && in.width > 0 && in.channels > 0, "augment: empty image");
    return apply(in, sample(c, in.height, in.width, gen), c);
}

}  // namespace micle::data
