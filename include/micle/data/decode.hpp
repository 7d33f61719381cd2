#pragma once
// PNG (libpng) and JPEG (libjpeg-turbo) decoding into planar floats in [0, 1]. PNG keeps
// 16-bit samples (divided by 65535); palette and low-bit-depth images are expanded; an
// alpha channel is dropped. Errors name the file and what libpng/libjpeg reported.
//
// Memory stays in proportion to the input (limits.hpp): the dimensions in the header are
// checked against the pixel limit and against what the compressed bytes can hold before
// the image buffer is allocated; a JPEG's rows are appended as they decode and the first
// libjpeg warning (truncated or corrupt data) stops the decode; progressive JPEGs may have
// at most `jpeg_max_scans` scans (each scan is a pass over the whole image).
//
// Both libraries report errors by longjmp; the functions that call them keep no objects
// with destructors between setjmp and the library calls, so unwinding skips nothing.
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "micle/data/image.hpp"
#include "micle/data/limits.hpp"

namespace micle::data {

inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(micle::detail::cat("cannot open ", path));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

namespace decode_detail {

struct png_reader_state {
    const std::uint8_t* data;
    std::size_t size, pos;
    char message[256];
    png_bytep* rows;  // here, not a local: locals changed after setjmp are indeterminate after longjmp
    const decode_limits* limits;
    bool too_large;              // the header promises more than the limit or the file allows
    std::uint64_t width, height, promised;  // dimensions and bytes of filtered rows the header promises
};

inline void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    auto* s = static_cast<png_reader_state*>(png_get_io_ptr(png));
    if (s->pos + n > s->size) png_error(png, "unexpected end of file (truncated?)");
    std::memcpy(out, s->data + s->pos, n);
    s->pos += n;
}
inline void png_error_fn(png_structp png, png_const_charp msg) {
    auto* s = static_cast<png_reader_state*>(png_get_io_ptr(png));
    std::snprintf(s->message, sizeof s->message, "%s", msg);
    png_longjmp(png, 1);
}
inline void png_warning_fn(png_structp, png_const_charp) {}

struct raw_image {
    std::uint32_t width = 0, height = 0;
    int channels = 0, bits = 8;
    std::vector<std::uint8_t> bytes;  // interleaved rows, 16-bit samples in host order
};

/// Returns false with s.message set on error. Only trivially destructible locals live
/// between setjmp and the libpng calls; `out` belongs to the caller.
inline bool png_decode_raw(png_reader_state& s, raw_image& out) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_error_fn, png_warning_fn);
    if (!png) return std::snprintf(s.message, sizeof s.message, "out of memory"), false;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        return std::snprintf(s.message, sizeof s.message, "out of memory"), false;
    }
    s.rows = nullptr;
    if (setjmp(png_jmpbuf(png))) {
        std::free(s.rows);
        s.rows = nullptr;
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    png_set_read_fn(png, &s, png_read_fn);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_read_info(png, info);
    const int color = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);
    // The filtered rows (one filter byte each) come out of one zlib stream, which cannot
    // expand more than 1032:1: check before the image buffer exists.
    s.width = png_get_image_width(png, info);
    s.height = png_get_image_height(png, info);
    s.promised = s.height * ((s.width * std::uint64_t(png_get_channels(png, info)) * std::uint64_t(depth) + 7) / 8 + 1);
    if (s.promised > deflate_max_ratio * s.size ||
        (s.limits->max_pixels > 0 && s.width * s.height > std::uint64_t(s.limits->max_pixels))) {
        s.too_large = true;
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png), png_set_strip_alpha(png);
    if (depth == 16) png_set_swap(png);  // PNG is big-endian; samples become host (little-endian) order
    png_read_update_info(png, info);
    out.width = png_get_image_width(png, info);
    out.height = png_get_image_height(png, info);
    out.channels = png_get_channels(png, info);
    out.bits = png_get_bit_depth(png, info);
    const std::size_t stride = png_get_rowbytes(png, info);
    out.bytes.resize(stride * out.height);
    s.rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * out.height));
    if (!s.rows) png_error(png, "out of memory");
    for (std::uint32_t y = 0; y < out.height; ++y) s.rows[y] = out.bytes.data() + y * stride;
    png_read_image(png, s.rows);
    png_read_end(png, nullptr);
    std::free(s.rows);
    s.rows = nullptr;
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
}

/// More scans than any encoder writes (libjpeg's progressive scripts use about 10); each
/// scan of a progressive JPEG is a pass over the whole image, so a few kilobytes of
/// empty scans could otherwise keep a loader thread busy for minutes.
inline constexpr int jpeg_max_scans = 500;

struct jpeg_error_state {
    jpeg_error_mgr mgr;
    jpeg_progress_mgr progress;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool too_large;
    std::uint64_t width, height, max_pixels_for_size;
};
inline void jpeg_error_exit(j_common_ptr cinfo) {
    auto* e = reinterpret_cast<jpeg_error_state*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->message);
    std::longjmp(e->jump, 1);
}
/// A warning (msg_level < 0) - a truncated stream, corrupt data - ends the decode: libjpeg
/// would otherwise pad a truncated image with gray and carry on.
inline void jpeg_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    jpeg_error_exit(cinfo);
}
inline void jpeg_progress(j_common_ptr cinfo) {
    const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
    if (d->input_scan_number > jpeg_max_scans) {
        auto* e = reinterpret_cast<jpeg_error_state*>(cinfo->err);
        std::snprintf(e->message, sizeof e->message, "more than %d scans", jpeg_max_scans);
        std::longjmp(e->jump, 1);
    }
}

/// The most pixels `size` bytes of Huffman-coded JPEG can fill: every 8x8 block of every
/// component costs at least one bit (the DC difference's code), and a component sampled
/// below the maximum covers more pixels per block.
inline std::uint64_t jpeg_max_pixels_for_size(const jpeg_decompress_struct& cinfo, std::size_t size) {
    int min_hv = 16;
    for (int c = 0; c < cinfo.num_components; ++c)
        min_hv = std::min(min_hv, cinfo.comp_info[c].h_samp_factor * cinfo.comp_info[c].v_samp_factor);
    const std::uint64_t per_block = 64ull * std::uint64_t(cinfo.max_h_samp_factor * cinfo.max_v_samp_factor) /
                                    std::uint64_t(std::max(min_hv, 1));
    return std::uint64_t(size) * 8 * per_block;
}

inline bool jpeg_decode_raw(const std::uint8_t* data, std::size_t size, const decode_limits& limits, raw_image& out,
                            jpeg_error_state& err) {
    jpeg_decompress_struct cinfo;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    err.mgr.emit_message = jpeg_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    err.progress.progress_monitor = jpeg_progress;
    cinfo.progress = &err.progress;
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        std::snprintf(err.message, sizeof err.message, "CMYK JPEG images are not supported");
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    // Before jpeg_start_decompress, which allocates whole-image coefficient buffers for
    // progressive files.
    err.width = cinfo.image_width;
    err.height = cinfo.image_height;
    err.max_pixels_for_size = jpeg_max_pixels_for_size(cinfo, size);
    if (err.width * err.height > err.max_pixels_for_size ||
        (limits.max_pixels > 0 && err.width * err.height > std::uint64_t(limits.max_pixels))) {
        err.too_large = true;
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    out.width = cinfo.output_width;
    out.height = cinfo.output_height;
    out.channels = cinfo.output_components;
    out.bits = 8;
    const std::size_t stride = std::size_t(out.width) * std::size_t(out.channels);
    // Rows are appended as they decode: data that ends early stops at the first warning,
    // having cost only the rows it held.
    while (cinfo.output_scanline < cinfo.output_height) {
        out.bytes.resize((std::size_t(cinfo.output_scanline) + 1) * stride);
        JSAMPROW row = out.bytes.data() + std::size_t(cinfo.output_scanline) * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return true;
}

inline image to_planar(const raw_image& r) {
    image img(r.channels, r.height, r.width, r.bits);
    const float scale = r.bits == 16 ? 1.0f / 65535.0f : 1.0f / 255.0f;
    const std::size_t n = std::size_t(r.width) * r.height;
    for (std::size_t i = 0; i < n; ++i)
        for (int c = 0; c < r.channels; ++c) {
            const std::size_t k = i * std::size_t(r.channels) + std::size_t(c);
            float v;
            if (r.bits == 16) {
                std::uint16_t s;
                std::memcpy(&s, r.bytes.data() + 2 * k, 2);
                v = float(s);
            } else {
                v = float(r.bytes[k]);
            }
            img.pixels[std::size_t(c) * n + i] = v * scale;
        }
    return img;
}

}  // namespace decode_detail

/// Decodes a PNG held in memory; `name` is used in error messages.
inline image decode_png(const std::uint8_t* data, std::size_t size, const std::string& name,
                        const decode_limits& limits = {}) {
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) throw data_error(micle::detail::cat(name, ": not a PNG file"));
    decode_detail::png_reader_state s{data, size, 0, {}, nullptr, &limits, false, 0, 0, 0};
    decode_detail::raw_image raw;
    if (!decode_detail::png_decode_raw(s, raw)) {
        if (!s.too_large) throw data_error(micle::detail::cat(name, ": corrupt PNG: ", s.message));
        check_image_pixels(limits, name, s.width, s.height);
        throw data_error(micle::detail::cat(name, ": corrupt PNG: the header promises ", s.width, " x ", s.height,
                                            " pixels (", s.promised, " bytes of image data), more than the ", size,
                                            "-byte file can hold (deflate expands at most ", deflate_max_ratio, ":1)"));
    }
    if (raw.channels != 1 && raw.channels != 3)
        throw data_error(micle::detail::cat(name, ": PNG with ", raw.channels, " channels after expansion"));
    return decode_detail::to_planar(raw);
}

/// Decodes a baseline or progressive JPEG held in memory (grayscale or colour).
inline image decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                         const decode_limits& limits = {}) {
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) throw data_error(micle::detail::cat(name, ": not a JPEG file"));
    decode_detail::jpeg_error_state err{};
    decode_detail::raw_image raw;
    if (!decode_detail::jpeg_decode_raw(data, size, limits, raw, err)) {
        if (!err.too_large) throw data_error(micle::detail::cat(name, ": corrupt JPEG: ", err.message));
        check_image_pixels(limits, name, err.width, err.height);
        throw data_error(micle::detail::cat(name, ": corrupt JPEG: the header promises ", err.width, " x ", err.height,
                                            " pixels, more than the ", size, "-byte file can hold (at most ",
                                            err.max_pixels_for_size, ": one bit per 8x8 block at least)"));
    }
    return decode_detail::to_planar(raw);
}

}  // namespace micle::data
