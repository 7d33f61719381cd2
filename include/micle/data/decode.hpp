#pragma once
// PNG (libpng) and JPEG (libjpeg-turbo) decoding into source_image: 8- or 16-bit samples as
// stored (PNG keeps 16 bits; palette and low-bit-depth images are expanded; an alpha channel
// is dropped). Errors name the file and what libpng/libjpeg reported.
//
// A decode follows the caller's plan (image.hpp), made from the header alone:
//   JPEG  DCT scaling at the largest reduction M/8 (M = 1, 2, 4) that keeps the image at or
//         above the size asked for - as PIL's draft mode - and only the region's rows
//         (jpeg_skip_scanlines: no inverse DCT for the others) and columns
//         (jpeg_crop_scanline, to the iMCU boundary) are decoded
//   PNG   full resolution (deflate has no reduced decode); a non-interlaced image is read
//         only down to the region's last row, and only the region's rows are kept. Its
//         image data is inflated up front by libdeflate (png_inflate_ahead below), about
//         2.2x zlib's speed, and libpng unfilters and converts it as usual
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
#include <libdeflate.h>
#include <png.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "micle/data/image.hpp"
#include "micle/data/limits.hpp"

namespace micle::data {

/// The whole file, read in one call (its size taken after opening, so a file that shrinks
/// meanwhile is an error, not garbage).
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw data_error(micle::detail::cat("cannot open ", path, ": a directory"));
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw data_error(micle::detail::cat("cannot open ", path));
    const std::streamoff size = in.tellg();
    if (size < 0) throw data_error(micle::detail::cat("cannot read ", path));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), size))
        throw data_error(micle::detail::cat("cannot read ", path, ": it ended before its ", size, " bytes"));
    return bytes;
}

namespace decode_detail {

/// A PNG's image data inflated ahead of libpng (png_inflate_ahead), and the stream libpng
/// reads instead of the file: the file's chunks up to the first IDAT, then the inflated rows
/// re-wrapped as IDAT chunks of stored (uncompressed) deflate blocks, then the file's chunks
/// after the last IDAT. libpng's zlib then only copies.
struct png_inflated {
    struct segment {
        const std::uint8_t* data;
        std::size_t size;
    };
    std::unique_ptr<std::uint8_t[]> rows;  // the rows, a filter byte before each (not zero-filled)
    std::size_t rows_size = 0;
    std::size_t unfiltered = 0;            // the first rows, unfiltered here (filter byte 0, None)
    std::vector<std::uint8_t> glue;      // headers and trailers of the synthesized chunks
    std::vector<segment> segments;       // the stream, in order
};

struct png_reader_state {
    const std::uint8_t* data;
    std::size_t size, pos;
    char message[256];
    void* buffer;  // malloc'd row pointers or scratch row; here, not a local: locals changed after setjmp are indeterminate after longjmp
    const decode_limits* limits;
    bool too_large;              // the header promises more than the limit or the file allows
    std::uint64_t width, height, promised;  // dimensions and bytes of filtered rows the header promises
    const png_inflated* ahead = nullptr;    // when set, libpng reads its segments instead of `data`
    std::size_t segment = 0;                // with `ahead`: the segment being read, `pos` bytes into it
};

inline void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    auto* s = static_cast<png_reader_state*>(png_get_io_ptr(png));
    if (!s->ahead) {
        if (s->pos + n > s->size) png_error(png, "unexpected end of file (truncated?)");
        std::memcpy(out, s->data + s->pos, n);
        s->pos += n;
        return;
    }
    const auto& segments = s->ahead->segments;
    while (n > 0) {
        if (s->segment == segments.size()) png_error(png, "unexpected end of file (truncated?)");
        const auto& g = segments[s->segment];
        const std::size_t k = std::min(n, g.size - s->pos);
        std::memcpy(out, g.data + s->pos, k);
        out += k;
        n -= k;
        s->pos += k;
        if (s->pos == g.size) ++s->segment, s->pos = 0;
    }
}
/// The rows [y0, y1) and columns [x0, x1) of a `h` x `w` image decoded at scale_num / 8 that
/// cover the request's region (all of it when the request has none).
struct region {
    std::uint32_t y0, y1, x0, x1;
};
inline region scaled_region(const decode_request& r, std::uint32_t full_h, std::uint32_t full_w, int scale_num,
                            std::uint32_t h, std::uint32_t w) {
    if (r.whole()) return {0, h, 0, w};
    auto lo = [&](std::int64_t v, std::uint32_t n) {
        return std::uint32_t(std::clamp<std::int64_t>(v * scale_num / 8, 0, std::int64_t(n)));
    };
    auto hi = [&](std::int64_t v, std::uint32_t n) {
        return std::uint32_t(std::clamp<std::int64_t>((v * scale_num + 7) / 8, 0, std::int64_t(n)));
    };
    region g{lo(r.top, h), hi(std::min<std::int64_t>(r.bottom, full_h), h), lo(r.left, w), hi(std::min<std::int64_t>(r.right, full_w), w)};
    if (g.y1 <= g.y0 || g.x1 <= g.x0) return {0, h, 0, w};
    return g;
}

/// PNG's filters (ISO/IEC 15948, clause 9), reversed in place. libpng reverses them with
/// scalar loops for 1-, 2- and 6-byte pixels (SIMD only for 3 and 4): for a 16-bit grey scan
/// that is a quarter of the decode. Here the pixel size is a template constant, so each
/// byte's predecessor stays in a register, and Up adds 8 bytes at a time.
namespace png_filter {
inline void add_up(std::uint8_t* x, const std::uint8_t* b, std::size_t n) {  // x[i] += b[i] (mod 256)
    constexpr std::uint64_t low7 = 0x7f7f7f7f7f7f7f7full, high = 0x8080808080808080ull;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t u, v;
        std::memcpy(&u, x + i, 8);
        std::memcpy(&v, b + i, 8);
        u = ((u & low7) + (v & low7)) ^ ((u ^ v) & high);  // bytewise sum, no carry between bytes
        std::memcpy(x + i, &u, 8);
    }
    for (; i < n; ++i) x[i] = std::uint8_t(x[i] + b[i]);
}
template <int bpp>
void sub(std::uint8_t* x, std::size_t n) {
    std::uint8_t a[bpp];
    for (int k = 0; k < bpp; ++k) a[k] = x[k];
    for (std::size_t i = bpp; i + bpp <= n; i += bpp)
        for (int k = 0; k < bpp; ++k) a[k] = x[i + std::size_t(k)] = std::uint8_t(x[i + std::size_t(k)] + a[k]);
}
template <int bpp>
void average(std::uint8_t* x, const std::uint8_t* b, std::size_t n) {
    std::uint8_t a[bpp];
    for (int k = 0; k < bpp; ++k) a[k] = x[k] = std::uint8_t(x[k] + (b[k] >> 1));
    for (std::size_t i = bpp; i + bpp <= n; i += bpp)
        for (int k = 0; k < bpp; ++k) {
            const std::size_t j = i + std::size_t(k);
            a[k] = x[j] = std::uint8_t(x[j] + ((unsigned(a[k]) + b[j]) >> 1));
        }
}
/// Paeth (clause 9.4) a byte at a time: the reference, and the form for targets without SSE2.
template <int bpp>
void paeth_scalar(std::uint8_t* x, const std::uint8_t* b, std::size_t n) {
    std::uint8_t a[bpp], c[bpp];
    for (int k = 0; k < bpp; ++k) a[k] = x[k] = std::uint8_t(x[k] + b[k]), c[k] = b[k];  // a = c = 0: b predicts
    for (std::size_t i = bpp; i + bpp <= n; i += bpp)
        for (int k = 0; k < bpp; ++k) {
            const std::size_t j = i + std::size_t(k);
            const int up = b[j], left = a[k], diag = c[k];
            const int pa = std::abs(up - diag), pb = std::abs(left - diag), pc = std::abs(left + up - 2 * diag);
            // GCC 12 compiles this choice to branches (a mask form too), which mispredict on
            // noisy scans; paeth() below is the form without branches
            const int pred = (pa <= pb && pa <= pc) ? left : (pb <= pc ? up : diag);
            a[k] = x[j] = std::uint8_t(x[j] + pred);
            c[k] = std::uint8_t(up);
        }
}
#if defined(__SSE2__)
/// Paeth a pixel at a time, its bytes in the 16-bit lanes of one SSE2 register: the choice
/// between left, up and diagonal is a pair of compares and selects, with no branch to
/// mispredict. The left pixel is the loop's only dependency, about ten instructions long,
/// so this wins where a pixel is 2, 4 or 8 bytes (1.4x, 3x and 5.6x the scalar form on
/// noise); 1-, 3- and 6-byte pixels (odd-sized loads, or one byte per chain) stay scalar.
template <int bpp>
void paeth(std::uint8_t* x, const std::uint8_t* b, std::size_t n) {
    if constexpr (bpp != 2 && bpp != 4 && bpp != 8) {
        paeth_scalar<bpp>(x, b, n);
        return;
    }
    const __m128i zero = _mm_setzero_si128(), low8 = _mm_set1_epi16(0xff);
    auto load = [&](const std::uint8_t* q) {
        std::uint64_t v = 0;
        std::memcpy(&v, q, bpp);
        return _mm_unpacklo_epi8(_mm_cvtsi64_si128(static_cast<long long>(v)), zero);
    };
    auto abs16 = [&](__m128i v) { return _mm_max_epi16(v, _mm_sub_epi16(zero, v)); };
    __m128i a = zero, c = zero;
    for (std::size_t i = 0; i + bpp <= n; i += bpp) {
        const __m128i up = load(b + i);
        const __m128i pa = abs16(_mm_sub_epi16(up, c));                                   // |p - a|
        const __m128i pb = abs16(_mm_sub_epi16(a, c));                                    // |p - b|
        const __m128i pc = abs16(_mm_sub_epi16(_mm_add_epi16(a, up), _mm_add_epi16(c, c)));  // |p - c|
        const __m128i not_a = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
        const __m128i not_b = _mm_cmpgt_epi16(pb, pc);
        const __m128i bc = _mm_or_si128(_mm_andnot_si128(not_b, up), _mm_and_si128(not_b, c));
        const __m128i pred = _mm_or_si128(_mm_andnot_si128(not_a, a), _mm_and_si128(not_a, bc));
        a = _mm_and_si128(_mm_add_epi16(load(x + i), pred), low8);
        const auto out = static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_packus_epi16(a, a)));
        std::memcpy(x + i, &out, bpp);
        c = up;
    }
}
#else
template <int bpp>
void paeth(std::uint8_t* x, const std::uint8_t* b, std::size_t n) {
    paeth_scalar<bpp>(x, b, n);
}
#endif
/// Reverses the filters of the first `count` rows at `p` (each a filter-type byte and
/// `rowbytes` bytes; pixels of `bpp` bytes, 1 for depths under 8) and sets each filter
/// byte to 0 (None). False, with the rows partly reversed, at a filter type above 4.
template <int bpp>
bool reverse_rows(std::uint8_t* p, std::size_t count, std::size_t rowbytes) {
    const std::vector<std::uint8_t> zero(rowbytes, 0);  // the row above the first
    const std::uint8_t* prior = zero.data();
    for (std::size_t r = 0; r < count; ++r) {
        std::uint8_t* row = p + r * (rowbytes + 1);
        std::uint8_t* x = row + 1;
        switch (row[0]) {
            case 0: break;
            case 1: sub<bpp>(x, rowbytes); break;
            case 2: add_up(x, prior, rowbytes); break;
            case 3: average<bpp>(x, prior, rowbytes); break;
            case 4: paeth<bpp>(x, prior, rowbytes); break;
            default: return false;
        }
        row[0] = 0;
        prior = x;
    }
    return true;
}
inline bool reverse(std::uint8_t* p, std::size_t count, std::size_t rowbytes, int bpp) {
    switch (bpp) {
        case 1: return reverse_rows<1>(p, count, rowbytes);
        case 2: return reverse_rows<2>(p, count, rowbytes);
        case 3: return reverse_rows<3>(p, count, rowbytes);
        case 4: return reverse_rows<4>(p, count, rowbytes);
        case 6: return reverse_rows<6>(p, count, rowbytes);
        case 8: return reverse_rows<8>(p, count, rowbytes);
        default: return false;
    }
}
}  // namespace png_filter

/// libpng inflates with zlib (1.2.13 on Debian 12), half of a PNG decode's time; libdeflate
/// inflates the same stream about 2.2x faster, but only as one buffer. So when a file's
/// chunks are sound - every CRC right, IHDR first, the IDATs together, IEND reached, not
/// interlaced - and its image data inflates to exactly the rows IHDR promises, this inflates
/// it into `out` and lays out the stream libpng then reads (png_inflated). libpng still
/// parses, checks and converts everything. The rows down to the last one `request` needs
/// are also unfiltered here (png_filter), so libpng finds filter type None there. Any other
/// file - a filter type above 4 in those rows included - returns false and goes the
/// ordinary way, so what a damaged file reports is what libpng reports.
inline bool png_inflate_ahead(const std::uint8_t* data, std::size_t size, const decode_limits& limits,
                              png_inflated& out, const decode_request& request = {}) {
    auto be32 = [](const std::uint8_t* p) {
        return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
    };
    auto put32 = [](std::uint8_t* p, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) p[i] = std::uint8_t(v >> (24 - 8 * i));
    };
    if (size < 8 + 12 + 13) return false;
    std::uint64_t width = 0, height = 0;
    int depth = 0, color = -1;
    std::size_t idat_begin = 0, idat_end = 0, compressed = 0, idats = 0;
    bool iend = false;
    for (std::size_t p = 8; p + 12 <= size;) {
        const std::uint32_t len = be32(data + p);
        if (len > 0x7fffffffu || len > size - p - 12) return false;
        const std::uint8_t* type = data + p + 4;
        if (libdeflate_crc32(0, type, len + 4) != be32(type + 4 + len)) return false;
        if (p == 8) {
            if (std::memcmp(type, "IHDR", 4) != 0 || len != 13) return false;
            width = be32(type + 4), height = be32(type + 8), depth = type[12], color = type[13];
            if (type[16] != 0) return false;  // Adam7: the rows come in passes
        }
        if (std::memcmp(type, "IDAT", 4) == 0) {
            if (idats > 0 && idat_end != p) return false;  // other chunks between IDATs
            if (idats++ == 0) idat_begin = p;
            idat_end = p + 12 + len;
            compressed += len;
        } else if (std::memcmp(type, "IEND", 4) == 0) {
            iend = true;
            break;
        }
        p += 12 + std::size_t(len);
    }
    const int channels = color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 0;
    if (!iend || idats == 0 || channels == 0 || width == 0 || height == 0 || width > (1u << 16) ||
        height > (1u << 16))
        return false;
    const std::uint64_t promised = height * ((width * std::uint64_t(channels) * std::uint64_t(depth) + 7) / 8 + 1);
    if (promised > deflate_max_ratio * size || (limits.max_pixels > 0 && width * height > std::uint64_t(limits.max_pixels)))
        return false;  // the ordinary way reports it

    std::vector<std::uint8_t> joined;  // the image data's chunks, contiguous
    const std::uint8_t* in = data + idat_begin + 8;
    if (idats > 1) {
        joined.reserve(compressed);
        for (std::size_t p = idat_begin; p < idat_end;) {
            const std::uint32_t len = be32(data + p);
            joined.insert(joined.end(), data + p + 8, data + p + 8 + len);
            p += 12 + std::size_t(len);
        }
        in = joined.data();
    }
    std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> inflater(
        libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
    if (!inflater) return false;
    out.rows.reset(new std::uint8_t[promised]);
    out.rows_size = promised;
    if (libdeflate_zlib_decompress(inflater.get(), in, compressed, out.rows.get(), promised, nullptr) != LIBDEFLATE_SUCCESS)
        return false;
    joined = {};
    // The rows libpng will read (png_decode_raw stops at the region's last row).
    const std::size_t rowbytes = std::size_t(promised / height) - 1;
    const auto needed = std::size_t(scaled_region(request, std::uint32_t(height), std::uint32_t(width), 8,
                                                  std::uint32_t(height), std::uint32_t(width)).y1);
    if (!png_filter::reverse(out.rows.get(), needed, rowbytes, std::max(1, channels * depth / 8))) return false;
    out.unfiltered = needed;

    // One IDAT chunk per stored block: length, type, [zlib header], block header, rows,
    // [Adler-32], CRC. libpng is told to skip both checks (png_decode_raw: the file's own
    // were verified above), so the synthesized chunks carry no CRC, and no Adler-32 where
    // libpng can skip it.
    constexpr std::size_t block = 65535;
    const std::size_t blocks = (promised + block - 1) / block;
#ifdef PNG_IGNORE_ADLER32
    const std::uint32_t adler = 0;
#else
    const std::uint32_t adler = libdeflate_adler32(1, out.rows.get(), promised);
#endif
    out.glue.assign(blocks * 23, 0);
    out.segments.clear();
    out.segments.reserve(2 + 3 * blocks);
    out.segments.push_back({data, idat_begin});
    std::uint8_t* g = out.glue.data();
    for (std::size_t b = 0; b < blocks; ++b) {
        const bool first = b == 0, last = b + 1 == blocks;
        const std::uint8_t* rows = out.rows.get() + b * block;
        const auto n = std::uint16_t(last ? promised - b * block : block);
        std::uint8_t* head = g;
        std::size_t k = 8;
        std::memcpy(head + 4, "IDAT", 4);
        if (first) head[k++] = 0x78, head[k++] = 0x01;  // deflate, 32 KiB window, no dictionary
        head[k++] = last ? 1 : 0;                       // BFINAL, BTYPE 00 (stored)
        head[k++] = std::uint8_t(n), head[k++] = std::uint8_t(n >> 8);
        head[k++] = std::uint8_t(~n), head[k++] = std::uint8_t(~n >> 8);
        std::uint8_t* tail = head + k;
        std::size_t t = 0;
        if (last) put32(tail, adler), t = 4;
        put32(head, std::uint32_t(k - 8 + n + t));
        put32(tail + t, 0);  // CRC: not computed by libpng under PNG_CRC_QUIET_USE
        out.segments.push_back({head, k});
        out.segments.push_back({rows, n});
        out.segments.push_back({tail, t + 4});
        g = tail + t + 4;
    }
    out.segments.push_back({data + idat_end, size - idat_end});
    return true;
}

inline void png_error_fn(png_structp png, png_const_charp msg) {
    auto* s = static_cast<png_reader_state*>(png_get_io_ptr(png));
    std::snprintf(s->message, sizeof s->message, "%s", msg);
    png_longjmp(png, 1);
}
inline void png_warning_fn(png_structp, png_const_charp) {}

struct raw_image {
    std::uint32_t width = 0, height = 0;  // of the rows held
    int channels = 0, bits = 8;
    std::uint32_t full_width = 0, full_height = 0;  // of the image at full resolution
    int scale_num = 8;                              // decoded at scale_num / 8 (JPEG DCT scaling)
    std::uint32_t origin_y = 0, origin_x = 0;       // first row and column held, in decoded pixels
    std::vector<std::uint8_t> bytes;  // interleaved rows, 16-bit samples in host order
};

/// libpng's read and info structs for `s`; false (s.message set) when out of memory.
inline bool png_create(png_reader_state& s, png_structp& png, png_infop& info) {
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_error_fn, png_warning_fn);
    if (!png) return std::snprintf(s.message, sizeof s.message, "out of memory"), false;
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        return std::snprintf(s.message, sizeof s.message, "out of memory"), false;
    }
    return true;
}
/// Reads the chunks before the image data; called after the caller's setjmp (it may longjmp there).
inline void png_start(png_reader_state& s, png_structp png, png_infop info) {
    png_set_read_fn(png, &s, png_read_fn);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_read_info(png, info);
}

/// Reads the header (libpng's chunks before the image data) without decoding pixels.
inline bool png_read_header(png_reader_state& s, image_header& h) {
    png_structp png = nullptr;
    png_infop info = nullptr;
    if (!png_create(s, png, info)) return false;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    png_start(s, png, info);
    const int color = png_get_color_type(png, info);
    h.channels = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    h.height = png_get_image_height(png, info);
    h.width = png_get_image_width(png, info);
    h.bits = png_get_bit_depth(png, info) == 16 ? 16 : 8;
    png_destroy_read_struct(&png, &info, nullptr);
    s.pos = 0;
    return true;
}

/// Returns false with s.message set on error. Only trivially destructible locals live
/// between setjmp and the libpng calls; `out` belongs to the caller.
inline bool png_decode_raw(png_reader_state& s, raw_image& out, const decode_request& request = {}) {
    png_structp png = nullptr;
    png_infop info = nullptr;
    if (!png_create(s, png, info)) return false;
    s.buffer = nullptr;
    if (setjmp(png_jmpbuf(png))) {
        std::free(s.buffer);
        s.buffer = nullptr;
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    if (s.ahead) {  // checked and inflated already (png_inflate_ahead): no CRC or Adler-32 a second time
        png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#ifdef PNG_IGNORE_ADLER32
        png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
    }
    png_start(s, png, info);
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
    out.full_width = out.width = png_get_image_width(png, info);
    out.full_height = png_get_image_height(png, info);
    out.channels = png_get_channels(png, info);
    out.bits = png_get_bit_depth(png, info);
    const std::size_t stride = png_get_rowbytes(png, info);
    if (png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) {  // every pass covers every row
        out.height = out.full_height;
        out.bytes.resize(stride * out.height);
        s.buffer = std::malloc(sizeof(png_bytep) * out.height);
        if (!s.buffer) png_error(png, "out of memory");
        auto* rows = static_cast<png_bytep*>(s.buffer);
        for (std::uint32_t y = 0; y < out.height; ++y) rows[y] = out.bytes.data() + y * stride;
        png_read_image(png, rows);
        png_read_end(png, nullptr);
        std::free(s.buffer);
        s.buffer = nullptr;
    } else {  // rows above the region go through one scratch row; none below it is read
        const region g = scaled_region(request, out.full_height, out.full_width, 8, out.full_height, out.full_width);
        out.origin_y = g.y0;
        out.height = g.y1 - g.y0;
        out.bytes.resize(stride * out.height);
        s.buffer = std::malloc(stride);
        if (!s.buffer) png_error(png, "out of memory");
        for (std::uint32_t y = 0; y < g.y1; ++y)
            png_read_row(png, y < g.y0 ? static_cast<png_bytep>(s.buffer) : out.bytes.data() + (y - g.y0) * stride, nullptr);
        if (g.y1 == out.full_height) png_read_end(png, nullptr);
        std::free(s.buffer);
        s.buffer = nullptr;
    }
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

/// Errors and warnings of `cinfo` longjmp to err.jump with err.message set.
inline void jpeg_errors(jpeg_decompress_struct& cinfo, jpeg_error_state& err) {
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    err.mgr.emit_message = jpeg_message;
}

/// Sets up `cinfo` on the data and reads its header; false for CMYK (err.message set).
/// Called right after setjmp by both functions below.
inline bool jpeg_begin(jpeg_decompress_struct& cinfo, const std::uint8_t* data, std::size_t size, jpeg_error_state& err) {
    jpeg_create_decompress(&cinfo);
    err.progress.progress_monitor = jpeg_progress;
    cinfo.progress = &err.progress;
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        std::snprintf(err.message, sizeof err.message, "CMYK JPEG images are not supported");
        return false;
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    return true;
}

/// Reads the header only (no entropy-coded data).
inline bool jpeg_read_header_only(const std::uint8_t* data, std::size_t size, image_header& h, jpeg_error_state& err) {
    jpeg_decompress_struct cinfo;
    jpeg_errors(cinfo, err);
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    const bool ok = jpeg_begin(cinfo, data, size, err);
    h.channels = cinfo.num_components == 1 ? 1 : 3;
    h.height = cinfo.image_height;
    h.width = cinfo.image_width;
    h.bits = 8;
    jpeg_destroy_decompress(&cinfo);
    return ok;
}

/// The DCT scalings used: libjpeg-turbo's SIMD inverse DCTs are the 8x8, 4x4 and 2x2 ones
/// (and 1x1, the DC value); the others (3/8, 5/8, ...) are scalar and slower than 4/8.
inline constexpr int jpeg_scales[] = {1, 2, 4, 8};

inline bool jpeg_decode_raw(const std::uint8_t* data, std::size_t size, const decode_limits& limits, raw_image& out,
                            jpeg_error_state& err, const decode_request& request = {}) {
    jpeg_decompress_struct cinfo;
    jpeg_errors(cinfo, err);
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    if (!jpeg_begin(cinfo, data, size, err)) {
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
    // The largest reduction that keeps the image at or above the size asked for.
    for (int m : jpeg_scales) {
        const std::uint64_t w = (std::uint64_t(cinfo.image_width) * unsigned(m) + 7) / 8;
        const std::uint64_t h = (std::uint64_t(cinfo.image_height) * unsigned(m) + 7) / 8;
        if ((request.min_width <= 0 && request.min_height <= 0 && m != 8)) continue;
        if (w >= std::uint64_t(std::max<std::int64_t>(request.min_width, 0)) &&
            h >= std::uint64_t(std::max<std::int64_t>(request.min_height, 0))) {
            cinfo.scale_num = unsigned(m);
            cinfo.scale_denom = 8;
            out.scale_num = m;
            break;
        }
    }
    jpeg_start_decompress(&cinfo);
    out.full_width = cinfo.image_width;
    out.full_height = cinfo.image_height;
    out.channels = cinfo.output_components;
    out.bits = 8;
    const region g = scaled_region(request, out.full_height, out.full_width, out.scale_num, cinfo.output_height,
                                   cinfo.output_width);
    if (g.x0 > 0 || g.x1 < cinfo.output_width) {  // widened by libjpeg to whole iMCUs
        JDIMENSION x = g.x0, w = g.x1 - g.x0;
        jpeg_crop_scanline(&cinfo, &x, &w);
        out.origin_x = x;
    }
    if (g.y0 > 0) jpeg_skip_scanlines(&cinfo, g.y0);
    out.origin_y = g.y0;
    out.width = cinfo.output_width;
    out.height = g.y1 - g.y0;
    const std::size_t stride = std::size_t(out.width) * std::size_t(out.channels);
    // Rows are appended as they decode: data that ends early stops at the first warning,
    // having cost only the rows it held.
    while (cinfo.output_scanline < g.y1) {
        const std::size_t r = std::size_t(cinfo.output_scanline - g.y0);
        out.bytes.resize((r + 1) * stride);
        JSAMPROW row = out.bytes.data() + r * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    if (cinfo.output_scanline == cinfo.output_height) jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return true;
}

inline source_image to_source(raw_image&& r) {
    const int bytes = r.bits == 16 ? 2 : 1;
    source_image s = source_image::adopt(std::move(r.bytes), r.channels, r.height, r.width, r.bits, bytes);
    s.full_height = r.full_height;
    s.full_width = r.full_width;
    s.scale_y = s.scale_x = float(r.scale_num) / 8.0f;
    s.origin_y = r.origin_y;
    s.origin_x = r.origin_x;
    return s;
}

}  // namespace decode_detail

namespace decode_detail {
/// decode_png_source, with libdeflate inflating ahead of libpng where the file allows
/// (`inflate_ahead`) or zlib inside libpng throughout: the tests compare the two.
inline source_image decode_png_with(const std::uint8_t* data, std::size_t size, const std::string& name,
                                    const decode_limits& limits, const decode_plan& plan, bool inflate_ahead) {
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) throw data_error(micle::detail::cat(name, ": not a PNG file"));
    png_reader_state s{data, size, 0, {}, nullptr, &limits, false, 0, 0, 0};
    decode_request request;
    if (plan) {
        image_header h;
        if (!png_read_header(s, h)) throw data_error(micle::detail::cat(name, ": corrupt PNG: ", s.message));
        request = plan(h);
    }
    png_inflated ahead;
    if (inflate_ahead && png_inflate_ahead(data, size, limits, ahead, request)) s.ahead = &ahead;
    raw_image raw;
    if (!png_decode_raw(s, raw, request)) {
        if (!s.too_large) throw data_error(micle::detail::cat(name, ": corrupt PNG: ", s.message));
        check_image_pixels(limits, name, s.width, s.height);
        throw data_error(micle::detail::cat(name, ": corrupt PNG: the header promises ", s.width, " x ", s.height,
                                            " pixels (", s.promised, " bytes of image data), more than the ", size,
                                            "-byte file can hold (deflate expands at most ", deflate_max_ratio, ":1)"));
    }
    if (raw.channels != 1 && raw.channels != 3)
        throw data_error(micle::detail::cat(name, ": PNG with ", raw.channels, " channels after expansion"));
    return to_source(std::move(raw));
}
}  // namespace decode_detail

/// Decodes a PNG held in memory as `plan` allows; `name` is used in error messages.
inline source_image decode_png_source(const std::uint8_t* data, std::size_t size, const std::string& name,
                                      const decode_limits& limits = {}, const decode_plan& plan = {}) {
    return decode_detail::decode_png_with(data, size, name, limits, plan, true);
}

/// Decodes a baseline or progressive JPEG held in memory (grayscale or colour) as `plan`
/// allows: reduced by DCT scaling, and only the region it names.
inline source_image decode_jpeg_source(const std::uint8_t* data, std::size_t size, const std::string& name,
                                       const decode_limits& limits = {}, const decode_plan& plan = {}) {
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) throw data_error(micle::detail::cat(name, ": not a JPEG file"));
    decode_detail::jpeg_error_state err{};
    decode_request request;
    if (plan) {
        image_header h;
        if (!decode_detail::jpeg_read_header_only(data, size, h, err))
            throw data_error(micle::detail::cat(name, ": corrupt JPEG: ", err.message));
        request = plan(h);
    }
    decode_detail::raw_image raw;
    if (!decode_detail::jpeg_decode_raw(data, size, limits, raw, err, request)) {
        if (!err.too_large) throw data_error(micle::detail::cat(name, ": corrupt JPEG: ", err.message));
        check_image_pixels(limits, name, err.width, err.height);
        throw data_error(micle::detail::cat(name, ": corrupt JPEG: the header promises ", err.width, " x ", err.height,
                                            " pixels, more than the ", size, "-byte file can hold (at most ",
                                            err.max_pixels_for_size, ": one bit per 8x8 block at least)"));
    }
    return decode_detail::to_source(std::move(raw));
}

/// Decodes a whole PNG held in memory into planar floats.
inline image decode_png(const std::uint8_t* data, std::size_t size, const std::string& name,
                        const decode_limits& limits = {}) {
    return to_image(decode_png_source(data, size, name, limits));
}

/// Decodes a whole JPEG held in memory into planar floats.
inline image decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                         const decode_limits& limits = {}) {
    return to_image(decode_jpeg_source(data, size, name, limits));
}

}  // namespace micle::data
