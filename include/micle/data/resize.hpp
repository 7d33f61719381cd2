#pragma once
// Shrinking a decoded image at its source depth by area averaging: each output pixel is
// the mean of the input area it covers, fractional pixels weighted by their coverage (PIL's
// BOX filter, OpenCV's INTER_AREA). This is the antialiased reduction `micle prepare` stores
// images at; augmentations then sample the stored copy as they sample a DCT-scaled JPEG
// decode, in full-resolution coordinates (source_image::scale_*).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "micle/data/image.hpp"

namespace micle::data {

namespace resize_detail {
/// For each of `out` cells over `in` inputs: the first input index and the weights of the
/// inputs it covers (summing to 1).
struct taps {
    std::vector<std::int64_t> first;
    std::vector<std::int64_t> count;
    std::vector<float> weight;  ///< count[o] weights per output o, in order
    std::vector<std::int64_t> offset;
};
inline taps area_taps(std::int64_t in, std::int64_t out) {
    taps t;
    const double step = double(in) / double(out);
    for (std::int64_t o = 0; o < out; ++o) {
        const double a = double(o) * step, b = std::min(double(in), double(o + 1) * step);
        const auto i0 = std::int64_t(std::floor(a)), i1 = std::min(in, std::int64_t(std::ceil(b)));
        t.first.push_back(i0);
        t.count.push_back(i1 - i0);
        t.offset.push_back(std::int64_t(t.weight.size()));
        for (std::int64_t i = i0; i < i1; ++i) {
            const double lo = std::max(a, double(i)), hi = std::min(b, double(i + 1));
            t.weight.push_back(float((hi - lo) / step));
        }
    }
    return t;
}
template <class T>
void area(const source_image& in, std::int64_t out_h, std::int64_t out_w, T* dst) {
    const std::int64_t c = in.channels;
    const auto tx = area_taps(in.width, out_w), ty = area_taps(in.height, out_h);
    const auto* src = reinterpret_cast<const T*>(in.data);  // decoders' buffers are aligned to T
    std::vector<float> rows(std::size_t(in.height * out_w * c));  // horizontal pass, all rows
    for (std::int64_t y = 0; y < in.height; ++y) {
        const T* s = src + y * in.width * c;
        float* r = rows.data() + y * out_w * c;
        for (std::int64_t o = 0; o < out_w; ++o) {
            const float* w = tx.weight.data() + tx.offset[std::size_t(o)];
            for (std::int64_t k = 0; k < c; ++k) {
                float acc = 0;
                for (std::int64_t j = 0; j < tx.count[std::size_t(o)]; ++j)
                    acc += w[j] * float(s[(tx.first[std::size_t(o)] + j) * c + k]);
                r[o * c + k] = acc;
            }
        }
    }
    constexpr float top = sizeof(T) == 2 ? 65535.0f : 255.0f;
    std::vector<float> acc(std::size_t(out_w * c));
    for (std::int64_t o = 0; o < out_h; ++o) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        const float* w = ty.weight.data() + ty.offset[std::size_t(o)];
        for (std::int64_t j = 0; j < ty.count[std::size_t(o)]; ++j) {
            const float* r = rows.data() + (ty.first[std::size_t(o)] + j) * out_w * c;
            for (std::int64_t k = 0; k < out_w * c; ++k) acc[std::size_t(k)] += w[j] * r[k];
        }
        T* d = dst + o * out_w * c;
        for (std::int64_t k = 0; k < out_w * c; ++k) d[k] = T(std::clamp(std::round(acc[std::size_t(k)]), 0.0f, top));
    }
}
}  // namespace resize_detail

/// The buffer of `in` shrunk to out_h x out_w by area averaging, at its depth and channels,
/// values rounded to the nearest. The result covers what `in` covers: its full size and
/// origin are those of `in`, and its scale is `in`'s times out / in. Enlarging is refused
/// (a prepared copy never holds more pixels than its source).
inline source_image area_resize(const source_image& in, std::int64_t out_h, std::int64_t out_w) {
    check<value_error>(in.height > 0 && in.width > 0 && in.channels > 0 && in.data, "area_resize: empty image");
    check<value_error>(out_h >= 1 && out_w >= 1 && out_h <= in.height && out_w <= in.width, "area_resize: cannot resize ",
                       in.height, " x ", in.width, " to ", out_h, " x ", out_w, " (shrinking only)");
    check<value_error>(in.origin_y == 0 && in.origin_x == 0, "area_resize: the image is a region, not a whole image");
    std::vector<std::uint8_t> bytes(std::size_t(out_h * out_w * in.channels * in.sample_bytes));
    if (in.sample_bytes == 2)
        resize_detail::area(in, out_h, out_w, reinterpret_cast<std::uint16_t*>(bytes.data()));
    else
        resize_detail::area(in, out_h, out_w, bytes.data());
    source_image out = source_image::adopt(std::move(bytes), in.channels, out_h, out_w, in.bits, in.sample_bytes);
    out.full_height = in.full_height;
    out.full_width = in.full_width;
    out.scale_y = in.scale_y * float(out_h) / float(in.height);
    out.scale_x = in.scale_x * float(out_w) / float(in.width);
    return out;
}

/// The size a `height` x `width` image is stored at when its longer side may be at most
/// `max_side`: the longer side becomes max_side, the other keeps the aspect ratio (at least
/// 1); an image already within is kept as it is.
inline std::pair<std::int64_t, std::int64_t> fit_within(std::int64_t height, std::int64_t width, std::int64_t max_side) {
    check<value_error>(max_side >= 1, "max side must be >= 1, not ", max_side);
    const auto longer = std::max(height, width);
    if (longer <= max_side) return {height, width};
    const double k = double(max_side) / double(longer);
    auto side = [&](std::int64_t s) {
        return s == longer ? max_side : std::clamp<std::int64_t>(std::int64_t(std::lround(double(s) * k)), 1, max_side);
    };
    return {side(height), side(width)};
}

}  // namespace micle::data
