#pragma once
// Zip archives, as far as micle needs them: the central directory of an archive held in
// memory (a read file or a mapping), ZIP64 included, checked against the archive's size
// before anything is allocated; and a writer of stored (uncompressed) members with their
// data aligned, so that a reader can map a member and use its bytes in place. .npz files
// (npz.hpp) and prepared datasets (prepared.hpp) are zip archives; Python's zipfile and
// numpy.load read what the writer writes.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "micle/core/file.hpp"
#include "micle/data/image.hpp"

namespace micle::data::zip {

template <class... Parts>
[[noreturn]] void fail(const std::string& where, Parts&&... parts) {
    throw data_error(micle::detail::cat(where, ": ", std::forward<Parts>(parts)...));
}

inline std::uint16_t u16(const std::uint8_t* p) { return std::uint16_t(p[0] | (p[1] << 8)); }
inline std::uint32_t u32(const std::uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (std::uint32_t(p[3]) << 24); }
inline std::uint64_t u64(const std::uint8_t* p) { return u32(p) | (std::uint64_t(u32(p + 4)) << 32); }

/// CRC-32 of `n` bytes (zlib's crc32 takes at most 4 GiB at a time).
inline std::uint32_t crc32_of(const std::uint8_t* p, std::uint64_t n, std::uint32_t crc = 0) {
    auto sum = static_cast<uLong>(crc);
    while (n > 0) {
        const auto take = static_cast<uInt>(std::min<std::uint64_t>(n, std::uint64_t(1) << 30));
        sum = ::crc32(sum, p, take);
        p += take;
        n -= take;
    }
    return static_cast<std::uint32_t>(sum);
}

/// One member, as the central directory describes it.
struct entry {
    std::string name;
    std::uint16_t method = 0;    ///< 0 stored, 8 deflate
    std::uint32_t crc = 0;
    std::uint64_t csize = 0, usize = 0;
    std::uint64_t local = 0;     ///< offset of the local header
    std::uint64_t data = 0;      ///< offset of the member's (compressed) bytes
};

/// The members of the archive `zip` (`n` bytes), in directory order. Every offset and size
/// is checked against `n`: a member's data lies inside the archive, so a reader may use it
/// in place. `where` names the archive in errors.
inline std::vector<entry> directory(const std::uint8_t* zip, std::size_t n, const std::string& where) {
    // End of central directory: the last "PK\5\6" within the final 64 KiB + 22 bytes.
    if (n < 22) fail(where, "not a zip archive (", n, " bytes)");
    std::size_t eocd = std::string::npos;
    for (std::size_t i = n - 22 + 1; i-- > (n > 65557 ? n - 65557 : 0);)
        if (u32(zip + i) == 0x06054b50u) {
            eocd = i;
            break;
        }
    if (eocd == std::string::npos) fail(where, "not a zip archive (no end-of-central-directory record; truncated?)");
    std::uint64_t entries = u16(zip + eocd + 10), cd = u32(zip + eocd + 16);
    if (entries == 0xffff || cd == 0xffffffffu) {  // ZIP64: the locator sits right before the record
        if (eocd < 20 || u32(zip + eocd - 20) != 0x07064b50u) fail(where, "ZIP64 archive without its locator (corrupt?)");
        const std::uint64_t rec = u64(zip + eocd - 20 + 8);
        if (rec > n || n - rec < 56 || u32(zip + rec) != 0x06064b50u) fail(where, "corrupt ZIP64 end-of-central-directory record");
        entries = u64(zip + rec + 32);
        cd = u64(zip + rec + 48);
    }
    // Each entry takes at least 46 bytes of the directory, so the count is bounded by the
    // file before anything is reserved for it.
    if (cd > n || entries > (n - cd) / 46) fail(where, "zip directory of ", entries, " entries at offset ", cd, " does not fit in ", n, " bytes");
    std::vector<entry> out;
    out.reserve(static_cast<std::size_t>(entries));
    for (std::uint64_t e = 0; e < entries; ++e) {
        if (cd + 46 > n || u32(zip + cd) != 0x02014b50u) fail(where, "corrupt zip central directory entry ", e);
        entry m;
        m.method = u16(zip + cd + 10);
        m.crc = u32(zip + cd + 16);
        m.csize = u32(zip + cd + 20);
        m.usize = u32(zip + cd + 24);
        const std::size_t name_len = u16(zip + cd + 28), extra_len = u16(zip + cd + 30), comment_len = u16(zip + cd + 32);
        m.local = u32(zip + cd + 42);
        if (cd + 46 + name_len + extra_len > n) fail(where, "corrupt zip central directory entry ", e);
        m.name.assign(reinterpret_cast<const char*>(zip + cd + 46), name_len);
        // ZIP64 sizes and offset (numpy writes them for large members)
        const std::uint64_t extra_end = cd + 46 + name_len + extra_len;
        for (std::uint64_t x = cd + 46 + name_len; x + 4 <= extra_end;) {
            const std::uint16_t id = u16(zip + x), len = u16(zip + x + 2);
            if (x + 4 + len > extra_end) fail(where, "corrupt zip extra field in central directory entry ", e);
            if (id == 0x0001) {
                std::uint64_t f = x + 4;
                auto take = [&](std::uint64_t& v) {
                    if (v == 0xffffffffu && f + 8 <= x + 4 + len) {
                        v = u64(zip + f);
                        f += 8;
                    }
                };
                take(m.usize);
                take(m.csize);
                take(m.local);
            }
            x += 4 + len;
        }
        cd += 46 + name_len + extra_len + comment_len;
        const std::string member = where + ":" + m.name;
        if (m.local > n || n - m.local < 30 || u32(zip + m.local) != 0x04034b50u) fail(member, "corrupt local zip header");
        m.data = m.local + 30 + u16(zip + m.local + 26) + u16(zip + m.local + 28);
        if (m.data > n || m.csize > n - m.data) fail(member, "compressed data runs past the end of the file (truncated?)");
        out.push_back(std::move(m));
    }
    return out;
}

/// Writes a zip archive of stored members, whole or not at all (atomic_file): the bytes go
/// to a temporary file, and finish() writes the central directory (ZIP64 records when the
/// archive passes 4 GiB or 65535 members) and moves the archive into place. Each member's
/// data starts on an `align`-byte boundary of the file (padding in the local header's
/// extra field, as Android's zipalign does), so a mapped member is aligned in memory too.
/// Timestamps are fixed (1980-01-01), so the same members give the same bytes.
template <class E = data_error>
class writer {
public:
    writer(const std::filesystem::path& path, std::string_view what) : file_(path, what) {}

    /// Appends a member named `name` holding `parts`, one after the other.
    void add(std::string_view name, std::span<const std::span<const char>> parts, std::size_t align = 64) {
        std::uint64_t size = 0;
        std::uint32_t crc = 0;
        for (auto p : parts) {
            size += p.size();
            crc = crc32_of(reinterpret_cast<const std::uint8_t*>(p.data()), p.size(), crc);
        }
        if (size >= 0xffffffffu)
            throw E(micle::detail::cat(file_.path().string(), ": member ", name, " of ", size, " bytes (at most 4 GiB each)"));
        if (name.size() > 0xffff) throw E(micle::detail::cat(file_.path().string(), ": member name of ", name.size(), " bytes"));
        const std::uint64_t local = file_.size();
        std::size_t pad = 0;
        if (align > 1) {
            pad = (align - (local + 30 + name.size()) % align) % align;
            if (pad > 0 && pad < 4) pad += align;  // an extra field is at least its 4-byte header
        }
        std::string h;
        put32(h, 0x04034b50u);
        put16(h, 20);  // version needed: 2.0 (ZIP64 lives in the central directory only)
        put16(h, 0);   // flags
        put16(h, 0);   // stored
        put16(h, 0);   // time 00:00
        put16(h, 0x21);  // date 1980-01-01
        put32(h, crc);
        put32(h, std::uint32_t(size));
        put32(h, std::uint32_t(size));
        put16(h, std::uint16_t(name.size()));
        put16(h, std::uint16_t(pad));
        h.append(name);
        if (pad > 0) {
            put16(h, 0xd935);  // zipalign's padding field
            put16(h, std::uint16_t(pad - 4));
            h.append(pad - 4, '\0');
        }
        file_.write(h);
        for (auto p : parts) file_.write(std::string_view(p.data(), p.size()));
        members_.push_back({std::string(name), 0, crc, size, size, local, 0});
    }
    void add(std::string_view name, std::string_view bytes, std::size_t align = 64) {
        const std::span<const char> one(bytes.data(), bytes.size());
        add(name, std::span<const std::span<const char>>(&one, 1), align);
    }
    std::size_t members() const noexcept { return members_.size(); }
    std::uint64_t bytes() const noexcept { return file_.size(); }

    /// Writes the central directory and makes the archive appear at its path.
    void finish() {
        const std::uint64_t cd = file_.size();
        std::string d;
        for (const auto& m : members_) {
            const bool big = m.local >= 0xffffffffu;
            put32(d, 0x02014b50u);
            put16(d, 0x0300 | 45);  // made by: Unix, 4.5
            put16(d, big ? 45 : 20);
            put16(d, 0);
            put16(d, 0);
            put16(d, 0);
            put16(d, 0x21);
            put32(d, m.crc);
            put32(d, std::uint32_t(m.csize));
            put32(d, std::uint32_t(m.usize));
            put16(d, std::uint16_t(m.name.size()));
            put16(d, big ? 12 : 0);
            put16(d, 0);  // comment
            put16(d, 0);  // disk
            put16(d, 0);  // internal attributes
            put32(d, 0100644u << 16);  // external: a regular file, rw-r--r--
            put32(d, big ? 0xffffffffu : std::uint32_t(m.local));
            d.append(m.name);
            if (big) {
                put16(d, 0x0001);
                put16(d, 8);
                put64(d, m.local);
            }
            if (d.size() >= (std::size_t(1) << 20)) {
                file_.write(d);
                d.clear();
            }
        }
        file_.write(d);
        d.clear();
        const std::uint64_t cd_size = file_.size() - cd, count = members_.size();
        const bool zip64 = count >= 0xffff || cd >= 0xffffffffu || cd_size >= 0xffffffffu;
        if (zip64) {
            const std::uint64_t rec = file_.size();
            put32(d, 0x06064b50u);
            put64(d, 44);  // the record's size after this field
            put16(d, 0x0300 | 45);
            put16(d, 45);
            put32(d, 0);
            put32(d, 0);
            put64(d, count);
            put64(d, count);
            put64(d, cd_size);
            put64(d, cd);
            put32(d, 0x07064b50u);  // locator
            put32(d, 0);
            put64(d, rec);
            put32(d, 1);
        }
        put32(d, 0x06054b50u);
        put16(d, 0);
        put16(d, 0);
        put16(d, zip64 ? 0xffff : std::uint16_t(count));
        put16(d, zip64 ? 0xffff : std::uint16_t(count));
        put32(d, zip64 ? 0xffffffffu : std::uint32_t(cd_size));
        put32(d, zip64 ? 0xffffffffu : std::uint32_t(cd));
        put16(d, 0);
        file_.write(d);
        file_.commit();
    }

private:
    static void put16(std::string& s, std::uint16_t v) {
        s.push_back(char(v & 0xff));
        s.push_back(char(v >> 8));
    }
    static void put32(std::string& s, std::uint32_t v) {
        put16(s, std::uint16_t(v & 0xffff));
        put16(s, std::uint16_t(v >> 16));
    }
    static void put64(std::string& s, std::uint64_t v) {
        put32(s, std::uint32_t(v & 0xffffffffu));
        put32(s, std::uint32_t(v >> 32));
    }

    atomic_file<E> file_;
    std::vector<entry> members_;
};

}  // namespace micle::data::zip
