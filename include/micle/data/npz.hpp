#pragma once
// NumPy .npz files (a zip archive of .npy arrays, stored or deflate-compressed), as the
// MedMNIST datasets ship: train_images, train_labels, val_images, ... . The zip directory
// is parsed here; deflate streams are inflated by zlib; .npy headers are parsed strictly.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "micle/core/file.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/limits.hpp"
#include "micle/data/zip.hpp"

namespace micle::data {

/// A .npy array: shape and raw little-endian bytes of dtype `descr` ('|u1', '<i8', '<f4', ...).
struct npy_array {
    std::string descr;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    /// Element i as a 64-bit integer (u1, i1, u2, i2, i4, u4, i8, u8, b1).
    std::int64_t integer(std::int64_t i) const {
        const auto at = bytes.data();
        if (descr == "|u1" || descr == "|b1") return at[i];
        if (descr == "|i1") return std::int8_t(at[i]);
        std::int64_t v = 0;
        if (descr == "<i8" || descr == "<u8") std::memcpy(&v, at + 8 * i, 8);
        else if (descr == "<i4") { std::int32_t x; std::memcpy(&x, at + 4 * i, 4); v = x; }
        else if (descr == "<u4") { std::uint32_t x; std::memcpy(&x, at + 4 * i, 4); v = x; }
        else if (descr == "<i2") { std::int16_t x; std::memcpy(&x, at + 2 * i, 2); v = x; }
        else if (descr == "<u2") { std::uint16_t x; std::memcpy(&x, at + 2 * i, 2); v = x; }
        return v;
    }
};

namespace npz_detail {
inline std::size_t item_size(const std::string& descr) {
    static const std::map<std::string, std::size_t> sizes{{"|u1", 1}, {"|i1", 1}, {"|b1", 1}, {"<u2", 2}, {"<i2", 2},
                                                          {"<u4", 4}, {"<i4", 4}, {"<f4", 4}, {"<u8", 8}, {"<i8", 8},
                                                          {"<f8", 8}};
    const auto it = sizes.find(descr);
    return it == sizes.end() ? 0 : it->second;
}

using zip::fail;

/// The header of a .npy array: dtype, shape, and where the data starts.
struct npy_header {
    std::string descr;
    std::vector<std::int64_t> shape;
    std::size_t data_offset = 0;  ///< bytes before the array data
    std::uint64_t data_bytes = 0; ///< shape x dtype size
};

/// The longest .npy header accepted (numpy writes at most a few hundred bytes, and itself
/// refuses to read headers over 10000 bytes by default).
inline constexpr std::size_t npy_max_header = 65536;

/// Parses the .npy header at the start of `p` (`n` bytes available); `where` names file and
/// member for errors. The shape's byte size is computed without overflow.
inline npy_header parse_npy_header(const std::uint8_t* p, std::size_t n, const std::string& where) {
    if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) fail(where, "not a .npy array (bad magic)");
    const int major = p[6];
    std::size_t header_len = 0, offset = 0;
    if (major == 1) {
        header_len = std::size_t(p[8]) | (std::size_t(p[9]) << 8);
        offset = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) fail(where, "truncated .npy header");
        header_len = std::size_t(p[8]) | (std::size_t(p[9]) << 8) | (std::size_t(p[10]) << 16) | (std::size_t(p[11]) << 24);
        offset = 12;
    } else {
        fail(where, ".npy version ", major, " is not supported");
    }
    if (header_len > npy_max_header) fail(where, ".npy header of ", header_len, " bytes (at most ", npy_max_header, ")");
    if (offset + header_len > n) fail(where, "truncated .npy header");
    const std::string h(reinterpret_cast<const char*>(p + offset), header_len);
    auto value_of = [&](const std::string& key) {
        const auto k = h.find("'" + key + "'");
        if (k == std::string::npos) fail(where, ".npy header has no '", key, "': ", h);
        const auto colon = h.find(':', k);
        if (colon == std::string::npos) fail(where, "malformed .npy header: ", h);
        return colon + 1;
    };
    npy_header a;
    {
        auto b = h.find('\'', value_of("descr"));
        const auto q = b == std::string::npos ? b : h.find('\'', b + 1);
        if (q == std::string::npos) fail(where, "malformed descr in .npy header: ", h);
        a.descr = h.substr(b + 1, q - b - 1);
        if (a.descr.size() == 3 && a.descr[0] == '=') a.descr[0] = '<';
        if (item_size(a.descr) == 0) fail(where, "unsupported dtype '", a.descr, "'");
    }
    {
        const auto b = h.find_first_not_of(' ', value_of("fortran_order"));
        if (b == std::string::npos || h.compare(b, 5, "False") != 0) fail(where, "Fortran-ordered arrays are not supported");
    }
    {
        const auto b = h.find('(', value_of("shape"));
        const auto q = b == std::string::npos ? b : h.find(')', b);
        if (q == std::string::npos) fail(where, "malformed shape in .npy header: ", h);
        std::string dims = h.substr(b + 1, q - b - 1);
        std::size_t pos = 0;
        std::uint64_t bytes = item_size(a.descr);
        while (pos < dims.size()) {
            while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
            if (pos >= dims.size()) break;
            std::size_t used = 0;
            long long d = 0;
            try {
                d = std::stoll(dims.substr(pos), &used);
            } catch (const std::exception&) {
                fail(where, "malformed shape '(", dims, ")'");
            }
            if (d < 0 || d > (1ll << 40)) fail(where, "implausible dimension ", d);
            a.shape.push_back(d);
            if (d != 0 && bytes > (std::uint64_t(1) << 50) / std::uint64_t(d)) fail(where, "implausible shape (", dims, ")");
            bytes *= std::uint64_t(d);
            pos += used;
            while (pos < dims.size() && dims[pos] == 'L') ++pos;
        }
        a.data_bytes = bytes;
    }
    a.data_offset = offset + header_len;
    return a;
}

/// Parses a .npy file held in memory. `where` names file and member for errors.
inline npy_array parse_npy(const std::vector<std::uint8_t>& buf, const std::string& where) {
    const auto h = parse_npy_header(buf.data(), buf.size(), where);
    if (buf.size() - h.data_offset != h.data_bytes)
        fail(where, "array data is ", buf.size() - h.data_offset, " bytes but shape and dtype '", h.descr, "' need ",
             h.data_bytes);
    return {h.descr, h.shape, std::vector<std::uint8_t>(buf.begin() + std::ptrdiff_t(h.data_offset), buf.end())};
}

}  // namespace npz_detail

/// The bytes before the data of a .npy file (version 1.0) holding an array of `shape` and
/// numpy dtype `descr` in C order: magic, version and the header, padded so that the data
/// starts 64-byte aligned, as numpy writes it. `where` names the file in errors.
inline std::string npy_prefix(const std::string& descr, const std::vector<std::int64_t>& shape, const std::string& where) {
    if (npz_detail::item_size(descr) == 0) npz_detail::fail(where, "cannot write dtype '", descr, "'");
    std::string dims;
    for (auto d : shape) {
        if (d < 0) npz_detail::fail(where, "negative dimension ", d);
        dims += std::to_string(d) + ",";
    }
    if (shape.size() > 1) dims.pop_back();  // (n,) for one dimension, (n,d) otherwise
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    header.append(63 - (10 + header.size()) % 64, ' ');  // numpy aligns the data to 64 bytes
    header += '\n';
    if (header.size() > 65535) npz_detail::fail(where, "shape of ", shape.size(), " dimensions is too long for a .npy header");
    const char fixed[10] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, char(header.size() & 0xff), char(header.size() >> 8)};
    return std::string(fixed, sizeof fixed) + header;
}

/// Writes `bytes`, an array of `shape` and numpy dtype `descr` in C order, as a .npy file
/// (version 1.0) that numpy.load reads, whole or not at all (write_file_atomically): an
/// existing file is replaced only by a complete one.
inline void write_npy(const std::filesystem::path& path, const std::string& descr, const std::vector<std::int64_t>& shape,
                      std::span<const std::byte> bytes) {
    const std::string prefix = npy_prefix(descr, shape, path.string());
    std::uint64_t numel = 1;
    for (auto d : shape) numel *= std::uint64_t(d);
    if (numel * npz_detail::item_size(descr) != bytes.size())
        npz_detail::fail(path.string(), bytes.size(), " bytes do not hold an array of that shape and dtype '", descr, "'");
    const std::span<const char> parts[] = {{prefix.data(), prefix.size()},
                                           {reinterpret_cast<const char*>(bytes.data()), bytes.size()}};
    write_file_atomically<data_error>(path, parts, "write_npy");
}

/// Writes `a` as a .npy file (see above).
inline void write_npy(const std::filesystem::path& path, const npy_array& a) {
    write_npy(path, a.descr, a.shape, std::as_bytes(std::span(a.bytes)));
}

namespace npz_detail {
/// Inflates or copies one zip member into a .npy array: the header first, checked
/// against the member's size, then the array data straight into its final buffer.
inline npy_array read_member(const std::uint8_t* src, std::uint64_t csize, std::uint64_t usize, int method,
                             std::uint32_t crc, const std::string& member) {
    struct inflater {
        z_stream z{};
        bool live = false;
        ~inflater() {
            if (live) inflateEnd(&z);
        }
    } inf;
    std::uint64_t consumed = 0;  // stored: bytes copied so far
    // Fills [out, out + n) with the member's next bytes; false when the data ends first.
    auto next = [&](std::uint8_t* out, std::size_t n) -> bool {
        if (n == 0) return true;  // an empty member: out may be null
        if (method == 0) {
            if (consumed + n > csize) return false;
            std::memcpy(out, src + consumed, n);
            consumed += n;
            return true;
        }
        inf.z.next_out = out;
        inf.z.avail_out = static_cast<uInt>(n);  // n <= 16 MiB
        while (inf.z.avail_out > 0) {
            if (inf.z.avail_in == 0) {  // zlib takes at most 4 GiB at a time
                if (consumed == csize) return false;
                const auto take = std::min<std::uint64_t>(csize - consumed, std::uint64_t(1) << 30);
                inf.z.next_in = const_cast<Bytef*>(src + consumed);
                inf.z.avail_in = static_cast<uInt>(take);
                consumed += take;
            }
            const int rc = inflate(&inf.z, Z_NO_FLUSH);
            if (rc == Z_STREAM_END) return inf.z.avail_out == 0;
            if (rc != Z_OK) fail(member, "deflate data is corrupt (zlib: ", inf.z.msg ? inf.z.msg : "error", ")");
        }
        return true;
    };
    if (method == 8) {
        if (inflateInit2(&inf.z, -MAX_WBITS) != Z_OK) fail(member, "zlib inflateInit2 failed");
        inf.live = true;
    }
    // The header: the fixed 10-12 bytes, then the rest of its declared length.
    std::vector<std::uint8_t> head(static_cast<std::size_t>(std::min<std::uint64_t>(usize, 12)));
    if (!next(head.data(), head.size())) fail(member, "member ends inside the .npy header");
    if (head.size() == 12 && std::memcmp(head.data(), "\x93NUMPY", 6) == 0) {
        const std::size_t fixed = head[6] == 1 ? 10 : 12;
        const std::size_t len = head[6] == 1 ? (std::size_t(head[8]) | (std::size_t(head[9]) << 8))
                                             : zip::u32(head.data() + 8);
        if (len <= npy_max_header && fixed + len > head.size() && fixed + len <= usize) {
            const std::size_t have = head.size();
            head.resize(fixed + len);
            if (!next(head.data() + have, head.size() - have)) fail(member, "member ends inside the .npy header");
        }
    }
    const auto h = parse_npy_header(head.data(), head.size(), member);
    // Every header that parses is longer than the 12 bytes read first, so the data starts
    // right after what was read.
    if (h.data_offset != head.size()) fail(member, "malformed .npy header (", h.data_offset, " bytes)");
    if (usize - h.data_offset != h.data_bytes)
        fail(member, "array data is ", usize - h.data_offset, " bytes but shape and dtype '", h.descr, "' need ",
             h.data_bytes);
    std::uint32_t sum = static_cast<std::uint32_t>(crc32(0L, head.data(), static_cast<uInt>(head.size())));
    npy_array a{h.descr, h.shape, {}};
    // Grown as the data arrives, so a member that ends early costs what it held.
    constexpr std::size_t chunk = std::size_t(16) << 20;
    for (std::uint64_t done = 0; done < h.data_bytes;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, h.data_bytes - done));
        a.bytes.resize(static_cast<std::size_t>(done) + n);
        if (!next(a.bytes.data() + done, n))
            fail(member, "deflate data is corrupt (zlib: short output after ", done, " of ", h.data_bytes, " bytes)");
        sum = static_cast<std::uint32_t>(crc32(sum, a.bytes.data() + done, static_cast<uInt>(n)));
        done += n;
    }
    if (method == 8) {
        std::uint8_t extra = 0;
        if (next(&extra, 1)) fail(member, "deflate data holds more than the ", usize, " bytes the zip directory says");
    }
    if (sum != crc) fail(member, "CRC mismatch (corrupt file)");
    return a;
}
}  // namespace npz_detail

/// Reads every array of an .npz archive held in memory (member names without ".npy");
/// `where` names it in errors.
inline std::map<std::string, npy_array> parse_npz(const std::vector<std::uint8_t>& archive, const std::string& where) {
    using namespace npz_detail;
    std::map<std::string, npy_array> out;
    for (auto& m : zip::directory(archive.data(), archive.size(), where)) {
        const std::string member = where + ":" + m.name;
        // Sizes are checked against what the data can hold before anything is allocated:
        // a stored member holds exactly its bytes, deflate expands at most 1032:1, and the
        // .npy header's shape x dtype must account for the whole member.
        if (m.method != 0 && m.method != 8)
            fail(member, "zip compression method ", m.method, " is not supported (only stored and deflate)");
        if (m.method == 0 && m.csize != m.usize) fail(member, "stored member with different sizes");
        if (m.method == 8 && m.usize > m.csize * deflate_max_ratio + 1024)
            fail(member, "uncompressed size ", m.usize, " is impossible for ", m.csize, " deflate bytes");
        std::string name = m.name;
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
        out.emplace(name, read_member(archive.data() + m.data, m.csize, m.usize, m.method, m.crc, member));
    }
    return out;
}

/// Reads every array of an .npz file.
inline std::map<std::string, npy_array> read_npz(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) npz_detail::fail(path.string(), "cannot open");
    const std::vector<std::uint8_t> zip((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_npz(zip, path.string());
}

/// A MedMNIST-layout split: `<split>_images` uint8 [N, H, W] or [N, H, W, 3] and
/// `<split>_labels` [N, 1] (multiclass) or [N, K] with 0/1 values (multilabel, K > 1).
inline dataset read_medmnist(const std::filesystem::path& path, const std::string& split, const decode_limits& limits = {}) {
    const auto arrays = read_npz(path);
    const std::string where = path.string();
    auto get = [&](const std::string& key) -> const npy_array& {
        const auto it = arrays.find(key);
        if (it == arrays.end()) npz_detail::fail(where, "no array '", key, "' (expected MedMNIST's <split>_images/_labels)");
        return it->second;
    };
    const auto& img = get(split + "_images");
    const auto& lab = get(split + "_labels");
    const std::string iw = where + ":" + split + "_images", lw = where + ":" + split + "_labels";
    if (img.descr != "|u1") npz_detail::fail(iw, "images must be uint8, got dtype '", img.descr, "'");
    if (!(img.shape.size() == 3 || (img.shape.size() == 4 && (img.shape[3] == 3 || img.shape[3] == 1))))
        npz_detail::fail(iw, "images must be N x H x W or N x H x W x 3, got ", img.shape.size(), " dimensions");
    check_image_pixels(limits, iw, std::uint64_t(img.shape[2]), std::uint64_t(img.shape[1]));
    const auto n = img.shape[0];
    if (lab.shape.empty() || lab.shape[0] != n || lab.shape.size() > 2)
        npz_detail::fail(lw, "labels must be N x 1 or N x K with N = ", n);
    if (npz_detail::item_size(lab.descr) == 0 || lab.descr == "<f4" || lab.descr == "<f8")
        npz_detail::fail(lw, "labels must be integers, got dtype '", lab.descr, "'");
    const std::int64_t k = lab.shape.size() == 2 ? lab.shape[1] : 1;
    dataset d;
    d.source = where;
    d.per_record_patients = true;
    d.task = k > 1 ? task_kind::multilabel : task_kind::multiclass;
    int max_label = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        d.patients.push_back(i);
        d.names.push_back(split + " record " + std::to_string(i));
        if (k == 1) {
            const auto v = lab.integer(i);
            if (v < 0 || v > 100000) npz_detail::fail(lw, "record ", i, " has label ", v);
            d.labels.push_back(int(v));
            max_label = std::max(max_label, int(v));
        } else {
            for (std::int64_t j = 0; j < k; ++j) {
                const auto v = lab.integer(i * k + j);
                if (v != 0 && v != 1) npz_detail::fail(lw, "record ", i, " label ", j, " is ", v, " (multi-label values are 0/1)");
                d.targets.push_back(float(v));
            }
        }
    }
    // Classes are counted over every split in the file, so a split that lacks the last
    // class still has the same number of outputs.
    if (k == 1)
        for (const auto& [key, other] : arrays)
            if (key.size() > 7 && key.compare(key.size() - 7, 7, "_labels") == 0 && other.shape.size() <= 2 &&
                npz_detail::item_size(other.descr) != 0 && other.descr != "<f4" && other.descr != "<f8")
                for (std::int64_t i = 0; i < other.numel(); ++i)
                    max_label = std::max(max_label, int(std::min<std::int64_t>(other.integer(i), 100000)));
    d.num_classes = k > 1 ? k : max_label + 1;
    const std::int64_t channels = img.shape.size() == 4 ? img.shape[3] : 1;
    d.decode = uint8_decoder(std::make_shared<const std::vector<std::uint8_t>>(img.bytes), img.shape[1], img.shape[2], channels);
    d.validate();
    return d;
}

}  // namespace micle::data
