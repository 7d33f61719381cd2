#pragma once
// The IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed, read with zlib):
// a big-endian magic 0x0000TTDD (TT = 0x08 for unsigned bytes, DD = number of dimensions),
// DD big-endian 32-bit sizes, then the data.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "micle/data/image.hpp"
#include "micle/data/limits.hpp"

namespace micle::data {

struct idx_array {
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> data;
};

/// Reads an unsigned-byte IDX file, gzip-compressed or not. A 3-dimensional array is a
/// stack of N images of H x W pixels, checked against `limits` before the data is read.
inline idx_array read_idx(const std::filesystem::path& path, const decode_limits& limits = {}) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw data_error(micle::detail::cat("idx: cannot open ", path));
    struct closer {
        gzFile f;
        ~closer() { gzclose(f); }
    } guard{f};
    auto read = [&](void* dst, std::size_t n, const char* what) {
        std::size_t done = 0;
        while (done < n) {
            const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
            const int got = gzread(f, static_cast<char*>(dst) + done, chunk);
            if (got <= 0) {
                int err = 0;
                const char* msg = gzerror(f, &err);
                throw data_error(micle::detail::cat("idx file ", path, ": ", err != Z_OK ? msg : "unexpected end of file",
                                                    " while reading ", what, " (", done, " of ", n, " bytes)"));
            }
            done += static_cast<std::size_t>(got);
        }
    };
    std::array<std::uint8_t, 4> magic{};
    read(magic.data(), 4, "the magic number");
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4)
        throw data_error(micle::detail::cat("idx file ", path, ": bad magic ", int(magic[0]), ",", int(magic[1]), ",",
                                            int(magic[2]), ",", int(magic[3]),
                                            " (expected unsigned-byte data with 1-4 dimensions)"));
    idx_array out;
    std::uint64_t total = 1;
    for (int d = 0; d < magic[3]; ++d) {
        std::array<std::uint8_t, 4> b{};
        read(b.data(), 4, "the dimensions");
        const std::uint32_t v = (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) | b[3];
        out.dims.push_back(v);
        total *= v;
        if (total > (std::uint64_t(1) << 34)) throw data_error(micle::detail::cat("idx file ", path, ": implausible size"));
    }
    if (out.dims.size() == 3) check_image_pixels(limits, path.string(), std::uint64_t(out.dims[2]), std::uint64_t(out.dims[1]));
    // Read in chunks, so that a header that promises more than the file holds fails at the
    // end of the file instead of allocating what it promised.
    constexpr std::size_t chunk = std::size_t(16) << 20;
    for (std::uint64_t done = 0; done < total;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, total - done));
        out.data.resize(static_cast<std::size_t>(done) + n);
        read(out.data.data() + done, n, "the data");
        done += n;
    }
    return out;
}

}  // namespace micle::data
