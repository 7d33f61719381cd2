#pragma once
// What one input may cost. Medical pipelines read files from outside the user's control
// (a corrupt hospital export, a hostile upload), so every reader checks what a header
// promises against what the file can hold before it allocates:
//
//  - a decoded image may have at most `max_pixels` pixels (like Pillow's
//    decompression-bomb guard, MAX_IMAGE_PIXELS, about 89.5 M); raise it for genuinely
//    huge scans with the trainer's --max-image-pixels or decode_limits::max_pixels;
//  - compressed data can only expand so far: deflate (zlib, PNG, npz) at most 1032:1, and
//    a Huffman-coded JPEG spends at least one bit per 8x8 block of each colour component,
//    so a header whose dimensions the file's bytes cannot fill is rejected before any
//    buffer of that size exists.
//
// Together these keep the memory of every reader in proportion to the size of its input.
#include <cstdint>
#include <string>

#include "micle/data/image.hpp"

namespace micle::data {

/// Pillow's default (Image.MAX_IMAGE_PIXELS): 1024^3 / 4 / 3 pixels.
inline constexpr std::int64_t default_max_image_pixels = 89'478'485;
/// The largest expansion of a deflate stream (a 258-byte match coded in 2 bits).
inline constexpr std::uint64_t deflate_max_ratio = 1032;
/// The longest manifest line the CSV reader accepts.
inline constexpr std::size_t default_max_line_bytes = std::size_t(1) << 20;

struct decode_limits {
    /// Largest decoded image, in pixels (width x height); 0 means no limit.
    std::int64_t max_pixels = default_max_image_pixels;
};

/// Throws data_error naming the file, the dimensions and how to raise the limit when a
/// `width` x `height` image is over `lim`.
inline void check_image_pixels(const decode_limits& lim, const std::string& name, std::uint64_t width,
                               std::uint64_t height) {
    if (lim.max_pixels <= 0) return;
    // Dimensions come from 16- and 32-bit header fields: the product fits in 64 bits.
    const std::uint64_t pixels = width * height;
    if (width > (std::uint64_t(1) << 32) || height > (std::uint64_t(1) << 32) ||
        pixels > static_cast<std::uint64_t>(lim.max_pixels))
        throw data_error(micle::detail::cat(name, ": image is ", width, " x ", height, " = ", pixels,
                                            " pixels, over the limit of ", lim.max_pixels,
                                            " pixels per image (a decompression bomb?); if the file is genuine, raise "
                                            "the limit with --max-image-pixels (data::decode_limits::max_pixels)"));
}

}  // namespace micle::data
