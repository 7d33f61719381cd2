#pragma once
// Prepared datasets (`micle prepare`): every image of a DATA SPEC decoded once, shrunk so
// that its longer side is at most N pixels (area averaging, source depth kept: 8 or 16 bit,
// DICOM windowed), and written with the patients, labels, splits and each image's source
// into one file that training maps into memory and reads with no decoding per epoch.
//
// The file is an uncompressed zip archive (an .npz that numpy.load opens):
//   micle_prepared.json    the first member: format, version, task, classes, the source
//                          spec, max side, the patient-id kind, the number of samples
//   images/00000000.npy    one per sample, in order: uint8 or little-endian uint16,
//                          shape (height, width, channels), channels 1 or 3; each
//                          member's data 64-byte aligned in the file
//   samples.csv            one row per sample: member, source (manifest line and path, or
//                          record), patient, split, full_height, full_width, bits, then the
//                          label (multi-class: class index) or one column per label
// Augmentations draw their crops in the full-resolution coordinates of full_height x
// full_width and sample the stored copy at its scale, as they sample a DCT-scaled JPEG.
//
// Reading checks everything before training starts - the zip directory against the file's
// size, every member's .npy header against its bytes, the JSON and CSV members' CRC-32s,
// every row - and each image's CRC-32 the first time it is read, so that a truncated or
// corrupt file is a data_error naming it and its member, never a crash or silent garbage.
// The mapping is shared by every reader thread; pages of a sample are released from the
// process once its views are drawn, so resident memory does not grow with the dataset.
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "micle/data/csv.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/npz.hpp"
#include "micle/data/resize.hpp"
#include "micle/data/zip.hpp"

namespace micle::data {

inline constexpr const char* prepared_format = "micle-prepared";
inline constexpr int prepared_version = 1;
inline constexpr const char* prepared_meta_member = "micle_prepared.json";
inline constexpr const char* prepared_index_member = "samples.csv";

struct prepare_options {
    std::int64_t max_side = 512;  ///< longer side of a stored image, at most
    int workers = 2;              ///< decoding threads
    std::string source;           ///< the DATA SPEC, recorded in the file
    /// Called from the writing thread after each sample is written (done, total).
    std::function<void(std::int64_t, std::int64_t)> progress;
};

struct prepare_result {
    std::int64_t images = 0, shrunk = 0;  ///< samples written, and how many were shrunk
    std::uint64_t bytes = 0;              ///< size of the file
};

namespace prepared_detail {
inline std::string member_name(std::int64_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "images/%08lld.npy", static_cast<long long>(i));
    return buf;
}
/// A CSV field, quoted when it holds a comma, a quote or surrounding blanks.
inline std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos && (s.empty() || (s.front() != ' ' && s.back() != ' ')))
        return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}
inline std::vector<std::string> index_columns(const dataset& d) {
    std::vector<std::string> cols{"member", "source", "patient", "split", "full_height", "full_width", "bits"};
    if (d.task == task_kind::multiclass)
        cols.push_back("label");
    else
        for (std::int64_t c = 0; c < d.num_classes; ++c)
            cols.push_back(std::size_t(c) < d.class_names.size() ? d.class_names[std::size_t(c)] : "label" + std::to_string(c));
    return cols;
}
inline std::string float_text(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", double(v));
    return buf;
}
}  // namespace prepared_detail

/// Writes every sample of `d` to `out` as a prepared dataset (see above), whole or not at
/// all: a sample that cannot be decoded stops the run with its error, and no partial file
/// is left. Memory holds at most 4 x workers decoded samples at a time.
inline prepare_result prepare(const dataset& d, const std::filesystem::path& out, const prepare_options& opt) {
    using namespace prepared_detail;
    check<value_error>(opt.max_side >= 1, "prepare: --max-side must be >= 1, not ", opt.max_side);
    check<value_error>(opt.workers >= 1, "prepare: workers must be >= 1");
    d.validate();
    zip::writer<data_error> w(out, "micle prepare");
    nlohmann::json meta = {{"format", prepared_format},
                           {"version", prepared_version},
                           {"source", opt.source.empty() ? d.source : opt.source},
                           {"max_side", opt.max_side},
                           {"task", d.task == task_kind::multiclass ? "multiclass" : "multilabel"},
                           {"num_classes", d.num_classes},
                           {"class_names", d.class_names},
                           {"patients", d.simulated_patients ? "simulated" : d.per_record_patients ? "records" : "source"},
                           {"samples", d.size()},
                           {"images", "images/NNNNNNNN.npy: (height, width, channels) uint8 or uint16"},
                           {"index", prepared_index_member}};
    w.add(prepared_meta_member, meta.dump(1) + "\n");

    std::string index;
    {
        const auto cols = index_columns(d);
        for (std::size_t k = 0; k < cols.size(); ++k) index += (k ? "," : "") + csv_field(cols[k]);
        index += "\n";
    }
    prepare_result r;
    const std::int64_t n = d.size(), chunk = 4 * std::int64_t(opt.workers);
    std::vector<source_image> slot(static_cast<std::size_t>(chunk));
    std::vector<std::string> errors(static_cast<std::size_t>(chunk));
    std::vector<image_header> headers(static_cast<std::size_t>(chunk));
    for (std::int64_t base = 0; base < n; base += chunk) {
        const std::int64_t m = std::min(chunk, n - base);
        std::atomic<std::int64_t> next{0};
        auto work = [&] {
            for (std::int64_t k; (k = next.fetch_add(1)) < m;) {
                const auto i = base + k;
                try {
                    image_header h;
                    source_image img = d.load_source(i, [&](const image_header& hh) {
                        h = hh;
                        const auto [th, tw] = fit_within(hh.height, hh.width, opt.max_side);
                        decode_request q;  // the whole image, reduced (JPEG DCT scaling) no further than stored
                        q.min_height = th;
                        q.min_width = tw;
                        return q;
                    });
                    check<data_error>(img.origin_y == 0 && img.origin_x == 0 && img.data, "decoder returned a region");
                    check<data_error>(img.channels == 1 || img.channels == 3, "has ", img.channels,
                                      " channels (prepared files hold 1 or 3)");
                    const auto [th, tw] = fit_within(h.height, h.width, opt.max_side);
                    if (img.height != th || img.width != tw) img = area_resize(img, th, tw);
                    headers[std::size_t(k)] = h;
                    slot[std::size_t(k)] = std::move(img);
                } catch (const std::exception& e) {
                    errors[std::size_t(k)] = e.what();
                }
            }
        };
        std::vector<std::thread> pool;
        for (int t = 1; t < std::min<std::int64_t>(opt.workers, m); ++t) pool.emplace_back(work);
        work();
        for (auto& t : pool) t.join();
        for (std::int64_t k = 0; k < m; ++k) {
            const auto i = base + k;
            if (!errors[std::size_t(k)].empty()) {
                const auto& e = errors[std::size_t(k)];
                throw data_error(e.find(d.names[std::size_t(i)]) == std::string::npos
                                     ? micle::detail::cat(d.names[std::size_t(i)], ": ", e)
                                     : e);
            }
            source_image img = std::move(slot[std::size_t(k)]);
            const auto& h = headers[std::size_t(k)];
            const std::string name = member_name(i);
            const std::string prefix = npy_prefix(img.sample_bytes == 2 ? "<u2" : "|u1", {img.height, img.width, img.channels}, name);
            const std::span<const char> parts[] = {
                {prefix.data(), prefix.size()},
                {reinterpret_cast<const char*>(img.data), std::size_t(img.height * img.row_bytes())}};
            w.add(name, parts);
            r.shrunk += img.height != h.height || img.width != h.width;
            index += micle::detail::cat(name, ",", csv_field(d.names[std::size_t(i)]), ",", d.patients[std::size_t(i)], ",",
                                        d.splits.empty() ? std::string() : d.splits[std::size_t(i)], ",", h.height, ",",
                                        h.width, ",", img.bits);
            if (d.task == task_kind::multiclass)
                index += micle::detail::cat(",", d.labels[std::size_t(i)]);
            else
                for (std::int64_t c = 0; c < d.num_classes; ++c) {  // blank: left out (a masked label)
                    const float t = d.targets[std::size_t(i * d.num_classes + c)];
                    index += "," + (is_left_out(t) ? std::string() : float_text(t));
                }
            index += "\n";
            ++r.images;
            if (opt.progress) opt.progress(i + 1, n);
        }
    }
    w.add(prepared_index_member, index, 1);
    w.finish();
    r.bytes = std::filesystem::file_size(out);
    return r;
}

namespace prepared_detail {
/// The read-only mapping of a prepared file, shared by every sample read from it.
struct mapping {
    std::string path;
    const std::uint8_t* base = nullptr;
    std::size_t size = 0;
    struct member {
        std::uint64_t offset = 0, bytes = 0;  ///< the whole .npy member (CRC-32 covers it)
        std::uint64_t data = 0;               ///< its pixels
        std::uint32_t crc = 0;
        std::string name;
    };
    std::vector<member> members;  ///< per sample
    std::unique_ptr<std::atomic<std::uint8_t>[]> checked;  ///< per sample: 0 unread, 1 CRC verified

    mapping(const std::filesystem::path& p) : path(p.string()) {
        const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw data_error(micle::detail::cat("cannot open prepared dataset ", path, ": ", std::strerror(errno)));
        struct stat st{};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            throw data_error(micle::detail::cat(path, ": not a regular file"));
        }
        size = std::size_t(st.st_size);
        if (size == 0) {
            ::close(fd);
            throw data_error(micle::detail::cat(path, ": empty file (not a prepared dataset)"));
        }
        void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        const int err = errno;
        ::close(fd);
        if (m == MAP_FAILED) throw data_error(micle::detail::cat(path, ": cannot map the file: ", std::strerror(err)));
        base = static_cast<const std::uint8_t*>(m);
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping() {
        if (base) ::munmap(const_cast<std::uint8_t*>(base), size);
    }

    /// Gives the pages of [p, p + n) back to the page cache: they leave this process's
    /// resident set and are read again (from the cache) on the next access.
    void release(const std::uint8_t* p, std::size_t n) const noexcept {
        const auto page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
        const auto lo = std::uintptr_t(p) & ~(page - 1), hi = (std::uintptr_t(p) + n + page - 1) & ~(page - 1);
        ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    }
};

/// Keeps the mapping alive while a sample is used and releases its pages afterwards.
struct lease {
    std::shared_ptr<const mapping> file;
    const std::uint8_t* p;
    std::size_t n;
    ~lease() { file->release(p, n); }
};

/// Fails, naming the file and member, when `bytes` at `offset` do not have the CRC-32 the
/// zip directory gave them.
inline void check_crc(const mapping& f, std::uint64_t offset, std::uint64_t bytes, std::uint32_t crc,
                      const std::string& name) {
    if (zip::crc32_of(f.base + offset, bytes) != crc)
        zip::fail(f.path + ":" + name, "CRC mismatch (corrupt file; prepare it again)");
}
inline void check_crc(const mapping& f, const zip::entry& e) { check_crc(f, e.data, e.usize, e.crc, e.name); }
template <class T>
T parse_number(const std::string& s, const std::string& where, const char* what) {
    std::size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(s, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != s.size()) zip::fail(where, what, " '", s, "' is not an integer");
    return T(v);
}
}  // namespace prepared_detail

/// Whether `path` is a prepared dataset: a zip archive whose first member is
/// micle_prepared.json (read from the first local header; nothing else is read).
inline bool is_prepared_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    char h[30 + 19];
    if (!in.read(h, sizeof h)) return false;
    const auto* u = reinterpret_cast<const std::uint8_t*>(h);
    return zip::u32(u) == 0x04034b50u && zip::u16(u + 26) == 19 && std::memcmp(h + 30, prepared_meta_member, 19) == 0;
}

/// Reads a prepared dataset: every sample, with the splits it was written with (empty when
/// its source had none: open_split then splits it by patient as it would the source).
inline dataset read_prepared(const std::filesystem::path& path) {
    using namespace prepared_detail;
    auto f = std::make_shared<mapping>(path);
    const auto entries = zip::directory(f->base, f->size, f->path);
    if (entries.empty() || entries.front().name != prepared_meta_member)
        zip::fail(f->path, "not a prepared dataset (its first member is not ", prepared_meta_member, ")");
    std::unordered_map<std::string, std::size_t> by_name;
    for (std::size_t k = 0; k < entries.size(); ++k) {
        const auto& e = entries[k];
        if (e.method != 0 || e.csize != e.usize)
            zip::fail(f->path + ":" + e.name, "compressed member (a prepared dataset stores its members uncompressed)");
        if (!by_name.emplace(e.name, k).second) zip::fail(f->path + ":" + e.name, "member appears twice");
    }
    const auto text = [&](const zip::entry& e) {
        check_crc(*f, e);
        return std::string(reinterpret_cast<const char*>(f->base + e.data), std::size_t(e.usize));
    };
    const std::string mw = f->path + ":" + prepared_meta_member;
    nlohmann::json meta;
    try {
        meta = nlohmann::json::parse(text(entries.front()));
    } catch (const nlohmann::json::exception& e) {
        zip::fail(mw, "malformed JSON: ", e.what());
    }
    dataset d;
    d.source = f->path;
    std::int64_t samples = 0;
    try {
        if (!meta.is_object() || meta.value("format", std::string()) != prepared_format)
            zip::fail(mw, "not a prepared dataset (format is not '", prepared_format, "')");
        if (meta.at("version").get<int>() != prepared_version)
            zip::fail(mw, "version ", meta.at("version").dump(), " (this micle reads version ", prepared_version,
                      "; prepare the data again)");
        const auto task = meta.at("task").get<std::string>();
        if (task != "multiclass" && task != "multilabel") zip::fail(mw, "task '", task, "'");
        d.task = task == "multiclass" ? task_kind::multiclass : task_kind::multilabel;
        d.num_classes = meta.at("num_classes").get<std::int64_t>();
        if (d.num_classes < 1 || d.num_classes > 100000) zip::fail(mw, "num_classes ", d.num_classes);
        d.class_names = meta.at("class_names").get<std::vector<std::string>>();
        if (!d.class_names.empty() && d.class_names.size() != std::size_t(d.num_classes))  // none: the source had none
            zip::fail(mw, d.class_names.size(), " class names for ", d.num_classes, " classes");
        const auto patients = meta.at("patients").get<std::string>();
        if (patients != "source" && patients != "records" && patients != "simulated") zip::fail(mw, "patients '", patients, "'");
        d.per_record_patients = patients == "records";
        d.simulated_patients = patients == "simulated";
        samples = meta.at("samples").get<std::int64_t>();
        if (samples < 1 || std::uint64_t(samples) + 2 > entries.size())
            zip::fail(mw, samples, " samples, but the archive has ", entries.size(), " members");
    } catch (const nlohmann::json::exception& e) {
        zip::fail(mw, "missing or mistyped field: ", e.what());
    }

    const auto idx = by_name.find(prepared_index_member);
    if (idx == by_name.end()) zip::fail(f->path, "no ", prepared_index_member, " member (truncated or not a prepared dataset)");
    const std::string iw = f->path + ":" + prepared_index_member;
    std::istringstream in(text(entries[idx->second]));
    std::string line;
    std::size_t line_no = 1;
    const auto expected = index_columns(d);
    if (!getline_bounded(in, line, default_max_line_bytes, iw, line_no) || split_csv_line(line, iw + ":1") != expected)
        zip::fail(iw + ":1", "header is not what this dataset's metadata needs (", expected.size(), " columns from member to ",
                  expected.back(), ")");
    struct stored {
        std::int64_t h, w, c, fh, fw;
        int bits, bytes;
    };
    std::vector<stored> geom;
    geom.reserve(std::size_t(samples));
    f->members.reserve(std::size_t(samples));
    while (getline_bounded(in, line, default_max_line_bytes, iw, line_no + 1)) {
        ++line_no;
        if (line.empty()) continue;
        const std::string where = iw + ":" + std::to_string(line_no);
        if (std::int64_t(geom.size()) >= samples) zip::fail(where, "more rows than the ", samples, " samples");
        const auto row = split_csv_line(line, where);
        if (row.size() != expected.size()) zip::fail(where, row.size(), " fields, the header has ", expected.size());
        const auto e = by_name.find(row[0]);
        if (e == by_name.end() || e->second == 0 || e->second == idx->second)
            zip::fail(where, "member '", row[0], "' is not in the archive (truncated?)");
        const auto& m = entries[e->second];
        const std::string mwhere = f->path + ":" + m.name;
        const auto h = npz_detail::parse_npy_header(f->base + m.data, std::size_t(m.usize), mwhere);
        if (h.descr != "|u1" && h.descr != "<u2") zip::fail(mwhere, "dtype '", h.descr, "' (prepared images are uint8 or uint16)");
        if (h.shape.size() != 3 || (h.shape[2] != 1 && h.shape[2] != 3) || h.shape[0] < 1 || h.shape[1] < 1)
            zip::fail(mwhere, "shape is not (height, width, 1 or 3 channels)");
        if (h.data_offset + h.data_bytes != m.usize)
            zip::fail(mwhere, "array data is ", m.usize - h.data_offset, " bytes but its shape needs ", h.data_bytes);
        stored g{h.shape[0], h.shape[1], h.shape[2], parse_number<std::int64_t>(row[4], where, "full_height"),
                 parse_number<std::int64_t>(row[5], where, "full_width"), parse_number<int>(row[6], where, "bits"),
                 h.descr == "<u2" ? 2 : 1};
        if (g.fh < g.h || g.fw < g.w || g.fh > (std::int64_t(1) << 24) || g.fw > (std::int64_t(1) << 24))
            zip::fail(where, "full size ", g.fh, " x ", g.fw, " is smaller than the stored ", g.h, " x ", g.w, " or implausible");
        if (g.bits < 1 || g.bits > 8 * g.bytes) zip::fail(where, "bits ", g.bits, " for ", g.bytes, "-byte samples");
        const auto patient = parse_number<std::int64_t>(row[2], where, "patient");
        if (patient < 0) zip::fail(where, "patient ", patient);
        if (!row[3].empty() && row[3] != "train" && row[3] != "val" && row[3] != "test")
            zip::fail(where, "split '", row[3], "' is not train, val or test");
        if (!geom.empty() && row[3].empty() != d.splits.empty()) zip::fail(where, "some rows have a split and some do not");
        if (!row[3].empty()) d.splits.push_back(row[3]);
        if (d.task == task_kind::multiclass) {
            const auto label = parse_number<std::int64_t>(row[7], where, "label");
            if (label < 0 || label >= d.num_classes) zip::fail(where, "label ", label, " is outside [0, ", d.num_classes, ")");
            d.labels.push_back(int(label));
        } else {
            for (std::int64_t c = 0; c < d.num_classes; ++c) {
                const auto& v = row[std::size_t(7 + c)];
                if (v != "0" && v != "1" && !v.empty())
                    zip::fail(where, "label '", expected[std::size_t(7 + c)], "' is '", v, "' (0, 1, or blank: left out)");
                d.targets.push_back(v.empty() ? left_out : (v == "1" ? 1.0f : 0.0f));
            }
        }
        d.patients.push_back(patient);
        d.names.push_back(row[1]);
        f->members.push_back({m.data, m.usize, m.data + h.data_offset, m.crc, m.name});
        geom.push_back(g);
    }
    if (std::int64_t(geom.size()) != samples)
        zip::fail(iw, geom.size(), " rows for ", samples, " samples (truncated?)");
    f->checked = std::make_unique<std::atomic<std::uint8_t>[]>(std::size_t(samples));
    d.decode = [f = std::shared_ptr<const mapping>(f), geom = std::move(geom)](std::int64_t i, const decode_plan&) {
        const auto& m = f->members[std::size_t(i)];
        const auto& g = geom[std::size_t(i)];
        if (f->checked[std::size_t(i)].load(std::memory_order_acquire) == 0) {
            check_crc(*f, m.offset, m.bytes, m.crc, m.name);
            f->checked[std::size_t(i)].store(1, std::memory_order_release);
        }
        source_image s;
        s.channels = g.c;
        s.height = g.h;
        s.width = g.w;
        s.full_height = g.fh;
        s.full_width = g.fw;
        s.scale_y = float(g.h) / float(g.fh);
        s.scale_x = float(g.w) / float(g.fw);
        s.bits = g.bits;
        s.sample_bytes = g.bytes;
        s.data = f->base + m.data;
        s.owner = std::make_shared<const lease>(lease{f, f->base + m.offset, std::size_t(m.bytes)});
        return s;
    };
    d.validate();
    return d;
}

}  // namespace micle::data
