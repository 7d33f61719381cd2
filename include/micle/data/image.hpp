#pragma once
// Decoded images.
//   source_image  what decoders return and pipelines read: pixels at their source depth
//                 (8- or 16-bit), possibly reduced (JPEG DCT scaling) or a region, never
//                 converted to float at full resolution
//   image         planar (CHW) floats in [0, 1]: an augmented view, or a whole image for
//                 tests and tools. 8-bit values are divided by 255 and 16-bit ones (PNG,
//                 rendered DICOM windows) by 65535, so 16-bit data keeps its precision.
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "micle/core/error.hpp"

namespace micle::data {

/// Input that cannot be read: a missing, truncated or corrupt file, a malformed manifest
/// line or array. The message names the file and the line, record or field.
class data_error : public error {
public:
    using error::error;
};

struct image {
    std::int64_t channels = 0, height = 0, width = 0;
    int bits = 8;               ///< bit depth of the source (8, 12, 16; 32 for float sources)
    std::vector<float> pixels;  ///< channels * height * width values, plane by plane

    image() = default;
    image(std::int64_t c, std::int64_t h, std::int64_t w, int bit_depth = 8)
        : channels(c), height(h), width(w), bits(bit_depth), pixels(static_cast<std::size_t>(c * h * w), 0.0f) {}

    std::int64_t plane() const noexcept { return height * width; }
    float* channel(std::int64_t c) noexcept { return pixels.data() + c * plane(); }
    const float* channel(std::int64_t c) const noexcept { return pixels.data() + c * plane(); }
    float& at(std::int64_t c, std::int64_t y, std::int64_t x) noexcept { return pixels[std::size_t((c * height + y) * width + x)]; }
    float at(std::int64_t c, std::int64_t y, std::int64_t x) const noexcept {
        return pixels[std::size_t((c * height + y) * width + x)];
    }
};

/// A sample's geometry at full resolution: what a decoder reads from the header, before
/// any pixel is decoded (augmentations draw their crops from it).
struct image_header {
    std::int64_t channels = 0, height = 0, width = 0;
    int bits = 8;
};

/// What a pipeline needs of one decode, in full-resolution pixels: the smallest size the
/// decoder may reduce the image to (0: full size) and the region it will sample (empty:
/// all of it). A decoder may return more than asked - PNG and DICOM always decode at full
/// size - but never less.
struct decode_request {
    std::int64_t min_height = 0, min_width = 0;
    std::int64_t top = 0, left = 0, bottom = 0, right = 0;  ///< [top, bottom) x [left, right); bottom 0: every row
    bool whole() const noexcept { return bottom <= 0 || right <= 0; }
};

/// Chosen by the caller from a sample's header before its pixels are decoded.
using decode_plan = std::function<decode_request(const image_header&)>;

/// Decoded pixels at their source depth: interleaved (HWC) unsigned 8-bit (value / 255) or
/// 16-bit (value / 65535) samples, the form decoders produce and a prepared dataset file
/// holds. The buffer may be a reduced decode (JPEG DCT scaling, a prepared copy) and may
/// hold only a region of the image; `scale_*` and `origin_*` map full-resolution
/// coordinates onto it. `owner` keeps `data` alive: a vector, an in-memory array, a mapped file.
struct source_image {
    std::int64_t channels = 0, height = 0, width = 0;  ///< of the buffer
    std::int64_t full_height = 0, full_width = 0;      ///< the image at full resolution
    float scale_y = 1, scale_x = 1;                    ///< buffer pixels per full-resolution pixel
    std::int64_t origin_y = 0, origin_x = 0;           ///< the buffer's first row and column in the (scaled) image
    int bits = 8;                                      ///< bit depth of the source (8, 12, 16)
    int sample_bytes = 1;                              ///< 1: uint8, 2: uint16 in host order
    const std::uint8_t* data = nullptr;
    std::shared_ptr<const void> owner;

    std::int64_t row_bytes() const noexcept { return width * channels * sample_bytes; }
    float unit() const noexcept { return sample_bytes == 2 ? 1.0f / 65535.0f : 1.0f / 255.0f; }
    /// Sample (c, y, x) of the buffer in [0, 1].
    float value(std::int64_t c, std::int64_t y, std::int64_t x) const noexcept {
        const std::size_t k = std::size_t((y * width + x) * channels + c);
        if (sample_bytes == 2) {
            std::uint16_t v;
            std::memcpy(&v, data + 2 * k, 2);
            return float(v) * (1.0f / 65535.0f);
        }
        return float(data[k]) * (1.0f / 255.0f);
    }
    image_header header() const noexcept { return {channels, full_height, full_width, bits}; }

    /// Takes ownership of `bytes` (c * h * w samples of `sample_bytes` each).
    static source_image adopt(std::vector<std::uint8_t> bytes, std::int64_t c, std::int64_t h, std::int64_t w, int bits,
                              int sample_bytes) {
        check<data_error>(bytes.size() >= std::size_t(c * h * w * sample_bytes), "source_image: ", bytes.size(),
                          " bytes for ", c, " x ", h, " x ", w, " samples of ", sample_bytes, " bytes");
        auto store = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
        source_image s;
        s.channels = c;
        s.height = s.full_height = h;
        s.width = s.full_width = w;
        s.bits = bits;
        s.sample_bytes = sample_bytes;
        s.data = store->data();
        s.owner = std::move(store);
        return s;
    }
};

/// The buffer of `s` as planar floats in [0, 1] (tests, `micle check`, whole-image users).
inline image to_image(const source_image& s) {
    image out(s.channels, s.height, s.width, s.bits);
    for (std::int64_t c = 0; c < s.channels; ++c)
        for (std::int64_t y = 0; y < s.height; ++y)
            for (std::int64_t x = 0; x < s.width; ++x) out.at(c, y, x) = s.value(c, y, x);
    return out;
}

}  // namespace micle::data
