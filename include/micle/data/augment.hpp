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
#include <cstring>
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

/// Samples channel `c` of an h x w buffer read through `at(c, y, x)` at (y, x), edges clamped.
template <class At>
inline float sample(const At& at, std::int64_t c, std::int64_t h, std::int64_t w, float y, float x, interpolation interp) {
    if (interp == interpolation::bicubic) {
        const float fy = std::floor(y), fx = std::floor(x);
        float acc = 0;
        for (int dy = -1; dy <= 2; ++dy) {
            const auto yy = std::clamp<std::int64_t>(std::int64_t(fy) + dy, 0, h - 1);
            const float wy = cubic(y - (fy + float(dy)));
            for (int dx = -1; dx <= 2; ++dx) {
                const auto xx = std::clamp<std::int64_t>(std::int64_t(fx) + dx, 0, w - 1);
                acc += wy * cubic(x - (fx + float(dx))) * at(c, yy, xx);
            }
        }
        return acc;
    }
    y = std::clamp(y, 0.0f, float(h - 1));
    x = std::clamp(x, 0.0f, float(w - 1));
    const auto y0 = std::int64_t(y), x0 = std::int64_t(x);
    const auto y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
    const float ty = y - float(y0), tx = x - float(x0);
    const float a = at(c, y0, x0) + tx * (at(c, y0, x1) - at(c, y0, x0));
    const float b = at(c, y1, x0) + tx * (at(c, y1, x1) - at(c, y1, x0));
    return a + ty * (b - a);
}

/// Where a buffer sits in the full-resolution image: its pixel (i, j) is the image's
/// ((i + origin_y + 0.5) / scale_y - 0.5, (j + origin_x + 0.5) / scale_x - 0.5).
struct placement {
    std::int64_t full_height, full_width, height, width;
    float scale_y = 1, scale_x = 1;
    std::int64_t origin_y = 0, origin_x = 0;
};

/// The box (full-resolution pixels) resized to out's size, rotated about its centre by
/// `rotation` degrees (points outside the image are 0) and flipped, read through `at`;
/// `out` has 1 or 3 channels, and 1-channel data is replicated into 3.
template <class At>
inline void resample(const At& at, std::int64_t in_channels, const placement& g, float top, float left, float height,
                     float width, interpolation interp, float rotation, bool flip, image& out) {
    const std::int64_t out_h = out.height, out_w = out.width;
    const float sy = height / float(out_h), sx = width / float(out_w);
    const float cy = top + height / 2, cx = left + width / 2;
    const double rad = double(rotation) * std::numbers::pi / 180.0;
    const float cr = float(std::cos(rad)), sr = float(std::sin(rad));
    const bool replicate = in_channels == 1 && out.channels == 3;
    const std::int64_t plane = out_h * out_w;
    for (std::int64_t y = 0; y < out_h; ++y)
        for (std::int64_t x = 0; x < out_w; ++x) {
            const std::int64_t xo = flip ? out_w - 1 - x : x;
            // offset from the box centre in source pixels, then rotated
            const float dy = (float(y) + 0.5f) * sy - height / 2, dx = (float(xo) + 0.5f) * sx - width / 2;
            const float ry = cr * dy - sr * dx, rx = sr * dy + cr * dx;
            const float py = cy + ry - 0.5f, px = cx + rx - 0.5f;
            float* dst = out.pixels.data() + y * out_w + x;
            if (rotation != 0.0f &&
                (py < -0.5f || py > float(g.full_height) - 0.5f || px < -0.5f || px > float(g.full_width) - 0.5f)) {
                for (std::int64_t c = 0; c < out.channels; ++c) dst[c * plane] = 0.0f;
                continue;
            }
            // at full resolution exactly py, px (so a full decode samples as the float path does)
            const float by = (g.scale_y == 1.0f ? py : (py + 0.5f) * g.scale_y - 0.5f) - float(g.origin_y);
            const float bx = (g.scale_x == 1.0f ? px : (px + 0.5f) * g.scale_x - 0.5f) - float(g.origin_x);
            for (std::int64_t c = 0; c < in_channels; ++c) dst[c * plane] = sample(at, c, g.height, g.width, by, bx, interp);
            if (replicate) dst[plane] = dst[2 * plane] = dst[0];
        }
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
    const augment_detail::placement g{in.height, in.width, in.height, in.width};
    augment_detail::resample([&](std::int64_t c, std::int64_t y, std::int64_t x) { return in.at(c, y, x); }, in.channels, g,
                             top, left, height, width, interp, rotation, flip, out);
    return out;
}

/// The same from decoded pixels at their source depth (a reduced or partial decode
/// included: the box is in full-resolution pixels), into `channels` float planes.
inline image crop_resize(const source_image& in, float top, float left, float height, float width, std::int64_t out_h,
                         std::int64_t out_w, interpolation interp, float rotation, bool flip, std::int64_t channels) {
    check<value_error>(in.channels == channels || (in.channels == 1 && channels == 3), "crop_resize: cannot make ", channels,
                       " channels from ", in.channels);
    image out(channels, out_h, out_w, in.bits);
    const augment_detail::placement g{in.full_height, in.full_width, in.height,  in.width,
                                      in.scale_y,     in.scale_x,    in.origin_y, in.origin_x};
    const std::int64_t row = in.width * in.channels;
    if (in.sample_bytes == 2) {
        const auto at = [&](std::int64_t c, std::int64_t y, std::int64_t x) {
            std::uint16_t v;
            std::memcpy(&v, in.data + 2 * (y * row + x * in.channels + c), 2);
            return float(v) * (1.0f / 65535.0f);
        };
        augment_detail::resample(at, in.channels, g, top, left, height, width, interp, rotation, flip, out);
    } else {
        const auto at = [&](std::int64_t c, std::int64_t y, std::int64_t x) {
            return float(in.data[y * row + x * in.channels + c]) * (1.0f / 255.0f);
        };
        augment_detail::resample(at, in.channels, g, top, left, height, width, interp, rotation, flip, out);
    }
    return out;
}

/// What a view drawn as `p` needs of a decode of the image `h`: a reduction that keeps the
/// box at or above the output size, and the region its (rotated) sampling grid reads,
/// widened by the interpolation's reach at the largest reduction (8 source pixels per
/// decoded pixel) and clipped to the image.
inline decode_request view_request(const augment_params& p, const augment_config& c, const image_header& h) {
    decode_request r;
    const double k = std::max(double(c.size) / std::max(1.0f, p.height), double(c.size) / std::max(1.0f, p.width));
    r.min_height = std::int64_t(std::ceil(double(h.height) * k));
    r.min_width = std::int64_t(std::ceil(double(h.width) * k));
    const double rad = double(p.rotation) * std::numbers::pi / 180.0;
    const double ac = std::abs(std::cos(rad)), as = std::abs(std::sin(rad));
    const double hy = (ac * p.height + as * p.width) / 2, hx = (as * p.height + ac * p.width) / 2;
    const double cy = p.top + p.height / 2.0, cx = p.left + p.width / 2.0;
    const double reach = 8.0 * (c.interp == interpolation::bicubic ? 3 : 2);
    r.top = std::clamp<std::int64_t>(std::int64_t(std::floor(cy - hy - reach)), 0, h.height);
    r.bottom = std::clamp<std::int64_t>(std::int64_t(std::ceil(cy + hy + reach)), 0, h.height);
    r.left = std::clamp<std::int64_t>(std::int64_t(std::floor(cx - hx - reach)), 0, h.width);
    r.right = std::clamp<std::int64_t>(std::int64_t(std::ceil(cx + hx + reach)), 0, h.width);
    return r;
}

/// The request that serves both: the larger size and the union of the regions.
inline decode_request widen(const decode_request& a, const decode_request& b) {
    if (a.whole() && a.min_height == 0 && a.min_width == 0) return b;
    decode_request r;
    r.min_height = std::max(a.min_height, b.min_height);
    r.min_width = std::max(a.min_width, b.min_width);
    if (a.whole() || b.whole()) return r;
    r.top = std::min(a.top, b.top);
    r.left = std::min(a.left, b.left);
    r.bottom = std::max(a.bottom, b.bottom);
    r.right = std::max(a.right, b.right);
    return r;
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

/// Separable Gaussian blur, edges reflected. The kernel spans `radius` pixels each side; by
/// default (radius < 0) its side is the odd number nearest 10% of the image's shorter side
/// (at least 3), as SimCLR's.
inline void gaussian_blur(image& img, float sigma, std::int64_t radius = -1) {
    auto k = std::max<std::int64_t>(3, std::int64_t(std::lround(0.1 * double(std::min(img.height, img.width)))));
    if (k % 2 == 0) ++k;
    const std::int64_t r = radius >= 0 ? radius : k / 2;
    k = 2 * r + 1;
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

namespace augment_detail {
/// Colour jitter in its drawn order, grayscale, blur and normalisation, on the resampled view.
inline void finish(image& out, const augment_params& p, const augment_config& c) {
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
}
}  // namespace augment_detail

/// Applies drawn parameters: crop + rotation + flip in one resampling, then colour jitter
/// in its drawn order, grayscale, blur and normalisation.
inline image apply(const image& in, const augment_params& p, const augment_config& c) {
    image out = crop_resize(in, p.top, p.left, p.height, p.width, c.size, c.size, c.interp, p.rotation, p.flip);
    augment_detail::finish(out, p, c);
    return out;
}

/// The same from decoded pixels at their source depth, into `channels` planes: the colour
/// operations run on the output view, never on the full-resolution image.
inline image apply(const source_image& in, const augment_params& p, const augment_config& c, std::int64_t channels) {
    image out = crop_resize(in, p.top, p.left, p.height, p.width, c.size, c.size, c.interp, p.rotation, p.flip, channels);
    augment_detail::finish(out, p, c);
    return out;
}

/// One augmentation of `in`, drawn from `gen`.
inline image augment(const image& in, const augment_config& c, rng& gen) {
    check<value_error>(in.height > 0 && in.width > 0 && in.channels > 0, "augment: empty image");
    return apply(in, sample(c, in.height, in.width, gen), c);
}

}  // namespace micle::data
