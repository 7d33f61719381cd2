#pragma once
// A decoded image: planar (CHW) floats in [0, 1]. Decoders divide by the largest value of
// the file's bit depth (255, 4095, 65535, or the DICOM window), so 16-bit data keeps its
// full precision (a float holds every 16-bit value exactly) until normalisation.
#include <cstdint>
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

/// 1 -> 3 channels by replication (for 3-channel models on grayscale data).
inline image to_channels(const image& in, std::int64_t channels) {
    if (in.channels == channels) return in;
    check<value_error>(in.channels == 1 && channels == 3, "to_channels: can only replicate 1 channel to 3, not ",
                       in.channels, " to ", channels);
    image out(3, in.height, in.width, in.bits);
    for (std::int64_t c = 0; c < 3; ++c) std::copy(in.pixels.begin(), in.pixels.end(), out.channel(c));
    return out;
}

}  // namespace micle::data
