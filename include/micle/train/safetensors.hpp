#pragma once
// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end)} (offsets into the byte buffer that
// follows the header) plus an optional "__metadata__" string map, then the raw
// little-endian tensor bytes. PyTorch checkpoints in this format load without conversion.
//
// Reading validates everything a damaged or hostile file could get wrong (sizes, offsets,
// overlaps, dtypes, JSON) and names the file and the tensor in its errors. Writing is
// atomic: a temporary file in the same directory, fsync, rename, fsync of the directory,
// so an interrupted or failed save never replaces a good file with a broken one.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "micle/core/error.hpp"
#include "micle/core/file.hpp"
#include "micle/core/shape.hpp"

namespace micle::train::safetensors {

static_assert(std::endian::native == std::endian::little, "micle's safetensors code assumes a little-endian host");

/// An I/O problem (missing, unreadable, unwritable or malformed file).
class io_error : public error {
public:
    using error::error;
};

enum class dtype : std::uint8_t { f32, f16, bf16, f64, i64, i32, u8 };

inline std::size_t size_of(dtype t) {
    switch (t) {
        case dtype::f64:
        case dtype::i64: return 8;
        case dtype::f32:
        case dtype::i32: return 4;
        case dtype::f16:
        case dtype::bf16: return 2;
        default: return 1;
    }
}
inline const char* name_of(dtype t) {
    switch (t) {
        case dtype::f32: return "F32";
        case dtype::f16: return "F16";
        case dtype::bf16: return "BF16";
        case dtype::f64: return "F64";
        case dtype::i64: return "I64";
        case dtype::i32: return "I32";
        default: return "U8";
    }
}
inline bool parse_dtype(const std::string& s, dtype& out) {
    for (auto t : {dtype::f32, dtype::f16, dtype::bf16, dtype::f64, dtype::i64, dtype::i32, dtype::u8})
        if (s == name_of(t)) {
            out = t;
            return true;
        }
    return false;
}

struct tensor_info {
    dtype type = dtype::f32;
    std::vector<std::int64_t> shape;
    std::span<const std::byte> bytes;

    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    micle::shape dims() const { return micle::shape(std::span<const std::int64_t>(shape)); }
};

namespace detail {
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24
        const float v = std::ldexp(float(man), -24);
        return sign ? -v : v;
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
    return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}
}  // namespace detail

/// A safetensors file read into memory and validated.
class reader {
public:
    explicit reader(const std::filesystem::path& path) : path_(path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw io_error(micle::detail::cat("safetensors: cannot open ", path, ": ", std::strerror(errno)));
        in.seekg(0, std::ios::end);
        const auto end = in.tellg();
        if (!in || end < 0) fail("cannot find the file's size (not a regular file?)");
        const auto size = static_cast<std::uint64_t>(end);
        in.seekg(0);
        if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length");
        std::uint64_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 8);
        if (n > size - 8) fail("header length ", n, " exceeds the file size ", size, " (truncated file?)");
        if (n > (std::uint64_t(100) << 20)) fail("header length ", n, " is over 100 MiB");
        std::string header(static_cast<std::size_t>(n), '\0');
        in.read(header.data(), static_cast<std::streamsize>(n));
        data_.resize(static_cast<std::size_t>(size - 8 - n));
        in.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_.size()));
        if (!in) fail("read error");
        parse(header);
    }

    const std::filesystem::path& path() const noexcept { return path_; }
    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    const tensor_info& at(const std::string& name) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end()) fail("no tensor named '", name, "'");
        return it->second;
    }
    std::vector<std::string> names() const {
        std::vector<std::string> r;
        for (const auto& [k, v] : tensors_) r.push_back(k);
        return r;
    }
    const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

    /// The tensor's values as floats (F32, F16, BF16, F64 converted).
    std::vector<float> floats(const std::string& name) const {
        const auto& t = at(name);
        std::vector<float> out(static_cast<std::size_t>(t.numel()));
        const std::byte* p = t.bytes.data();
        for (std::size_t i = 0; i < out.size(); ++i) {
            switch (t.type) {
                case dtype::f32: std::memcpy(&out[i], p + 4 * i, 4); break;
                case dtype::f64: {
                    double d;
                    std::memcpy(&d, p + 8 * i, 8);
                    out[i] = static_cast<float>(d);
                    break;
                }
                case dtype::bf16: {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = std::bit_cast<float>(std::uint32_t(h) << 16);
                    break;
                }
                case dtype::f16: {
                    std::uint16_t h;
                    std::memcpy(&h, p + 2 * i, 2);
                    out[i] = detail::half_to_float(h);
                    break;
                }
                default: fail("tensor '", name, "' has dtype ", name_of(t.type), ", expected a floating-point type");
            }
        }
        return out;
    }
    /// The tensor's values as 64-bit integers (I64, I32, U8).
    std::vector<std::int64_t> integers(const std::string& name) const {
        const auto& t = at(name);
        std::vector<std::int64_t> out(static_cast<std::size_t>(t.numel()));
        const std::byte* p = t.bytes.data();
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (t.type == dtype::i64) {
                std::memcpy(&out[i], p + 8 * i, 8);
            } else if (t.type == dtype::i32) {
                std::int32_t v;
                std::memcpy(&v, p + 4 * i, 4);
                out[i] = v;
            } else if (t.type == dtype::u8) {
                out[i] = std::to_integer<std::int64_t>(p[i]);
            } else {
                fail("tensor '", name, "' has dtype ", name_of(t.type), ", expected an integer type");
            }
        }
        return out;
    }

    template <class... Parts>
    [[noreturn]] void fail(Parts&&... parts) const {
        throw io_error(micle::detail::cat("safetensors file ", path_, ": ", std::forward<Parts>(parts)...));
    }

private:
    void parse(const std::string& header) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(header);
        } catch (const nlohmann::json::exception& e) {
            fail("the header is not valid JSON: ", e.what());
        }
        if (!j.is_object()) fail("the header is not a JSON object");
        std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
        for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string& name = it.key();
            const auto& v = it.value();
            if (name == "__metadata__") {
                if (!v.is_object()) fail("__metadata__ is not an object");
                for (auto m = v.begin(); m != v.end(); ++m) {
                    if (!m.value().is_string()) fail("__metadata__ value of '", m.key(), "' is not a string");
                    metadata_[m.key()] = m.value().get<std::string>();
                }
                continue;
            }
            if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
                fail("tensor '", name, "' lacks dtype, shape or data_offsets");
            tensor_info t;
            if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get<std::string>(), t.type))
                fail("tensor '", name, "' has unsupported dtype ", v["dtype"].dump());
            if (!v["shape"].is_array()) fail("tensor '", name, "' shape is not an array");
            std::uint64_t numel = 1;
            for (const auto& d : v["shape"]) {
                if (!d.is_number_unsigned()) fail("tensor '", name, "' has a bad dimension ", d.dump());
                const auto dim = d.get<std::uint64_t>();
                if (dim > (std::uint64_t(1) << 40) || (dim && numel > (std::uint64_t(1) << 40) / dim))
                    fail("tensor '", name, "' is implausibly large");
                numel *= dim;
                t.shape.push_back(static_cast<std::int64_t>(dim));
            }
            const auto& off = v["data_offsets"];
            if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
                fail("tensor '", name, "' data_offsets must be two non-negative integers");
            const auto begin = off[0].get<std::uint64_t>(), end = off[1].get<std::uint64_t>();
            if (begin > end || end > data_.size())
                fail("tensor '", name, "' data_offsets [", begin, ", ", end, ") lie outside the ", data_.size(),
                     "-byte data section (truncated file?)");
            if (end - begin != numel * size_of(t.type))
                fail("tensor '", name, "' has ", end - begin, " bytes but shape and dtype ", name_of(t.type), " need ",
                     numel * size_of(t.type));
            t.bytes = std::span<const std::byte>(data_.data() + begin, static_cast<std::size_t>(end - begin));
            ranges.emplace_back(begin, end);
            tensors_.emplace(name, std::move(t));
        }
        std::sort(ranges.begin(), ranges.end());
        for (std::size_t i = 1; i < ranges.size(); ++i)
            if (ranges[i].first < ranges[i - 1].second) fail("tensors overlap in the data section");
    }

    std::filesystem::path path_;
    std::vector<std::byte> data_;
    std::map<std::string, tensor_info> tensors_;
    std::map<std::string, std::string> metadata_;
};

/// Collects tensors, then writes them in one atomic step.
class writer {
public:
    void add(const std::string& name, dtype type, const std::vector<std::int64_t>& shape, std::span<const std::byte> bytes) {
        check<value_error>(name != "__metadata__" && !name.empty(), "safetensors: invalid tensor name '", name, "'");
        check<value_error>(entries_.count(name) == 0, "safetensors: tensor '", name, "' added twice");
        std::uint64_t numel = 1;
        for (auto d : shape) numel *= static_cast<std::uint64_t>(d);
        check<value_error>(numel * size_of(type) == bytes.size(), "safetensors: tensor '", name, "' has ",
                           bytes.size(), " bytes for ", numel, " elements of ", name_of(type));
        entries_[name] = {type, shape, std::vector<std::byte>(bytes.begin(), bytes.end())};
    }
    void add_f32(const std::string& name, const micle::shape& s, std::span<const float> v) {
        add(name, dtype::f32, {s.begin(), s.end()}, std::as_bytes(v));
    }
    void add_i64(const std::string& name, const std::vector<std::int64_t>& shape, std::span<const std::int64_t> v) {
        add(name, dtype::i64, shape, std::as_bytes(v));
    }
    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

    /// Writes `path` atomically. On any failure (disk full, permissions) the previous
    /// file at `path`, if any, is left as it was and the temporary file is removed.
    void write(const std::filesystem::path& path) const {
        nlohmann::json h = nlohmann::json::object();
        std::uint64_t offset = 0;
        for (const auto& [name, e] : entries_) {
            h[name] = {{"dtype", name_of(e.type)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
            offset += e.bytes.size();
        }
        if (!metadata_.empty()) h["__metadata__"] = metadata_;
        std::string header = h.dump();
        header.append((8 - header.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
        const std::uint64_t n = header.size();

        std::vector<std::span<const char>> parts{{reinterpret_cast<const char*>(&n), 8}, {header.data(), header.size()}};
        for (const auto& [name, e] : entries_) parts.emplace_back(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size());
        write_file_atomically<io_error>(path, parts, "safetensors");
    }

private:
    struct entry {
        dtype type;
        std::vector<std::int64_t> shape;
        std::vector<std::byte> bytes;
    };
    std::map<std::string, entry> entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace micle::train::safetensors

namespace micle {
namespace safetensors = train::safetensors;  // also spelled micle::safetensors
}  // namespace micle
