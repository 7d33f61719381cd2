// libFuzzer entry points for every parser of untrusted input. Each target feeds the bytes
// to one reader; a micle error (micle::error and what derives from it) is the expected
// answer to bad input, and anything else - another exception (bad_alloc, out_of_range,
// length_error: they escape and abort), a crash, a sanitizer report, a hang - is a bug.
// What a reader accepted is summarised (shape, depth, a checksum of the values), so that
// ctest can check that the corpus's valid files decode to what they hold.
//
// Built twice: with clang -fsanitize=fuzzer,address,undefined as fuzz_<format> (cmake
// -DMICLE_BUILD_FUZZERS=ON -DCMAKE_CXX_COMPILER=clang++; MICLE_FUZZ_FORMAT picks the
// target), and with a plain main() (replay.cpp) as micle_fuzz_replay, which ctest runs
// over tests/fuzz/corpus/<format>/ in every build, the sanitizer build included.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <unistd.h>

#include "micle/data/csv.hpp"
#include "micle/data/decode.hpp"
#include "micle/data/dicom.hpp"
#include "micle/data/idx.hpp"
#include "micle/data/npz.hpp"
#include "micle/data/prepared.hpp"
#include "micle/train/safetensors.hpp"


namespace {
std::filesystem::path scratch_file(const char* ext) {
    return std::filesystem::temp_directory_path() / ("micle-fuzz-" + std::to_string(::getpid()) + ext);
}
/// Readers that take a path: the input goes to a scratch file, removed afterwards.
template <class F>
void with_file(const char* ext, const std::uint8_t* data, std::size_t size, F&& read) {
    const auto p = scratch_file(ext);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(data), std::streamsize(size));
    struct remover {
        std::filesystem::path p;
        ~remover() { std::filesystem::remove(p); }
    } cleanup{p};
    read(p);
}

/// The directory CSV manifests are read against: it holds the images the corpus's
/// manifests name (empty files; a manifest's images are decoded only when read), so that
/// a manifest gets past the existence check to the rest of the parser. Removed at exit.
const std::filesystem::path& csv_root() {
    static const struct root {
        std::filesystem::path p = scratch_file("-csv-root");
        root() {
            std::filesystem::create_directories(p);
            for (const char* name : {"a.png", "b.png", "q.png", "x.png", "y.png"}) std::ofstream(p / name).put('\n');
        }
        ~root() { std::filesystem::remove_all(p); }
    } r;
    return r.p;
}

std::string join_shape(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}
std::string summary(const micle::data::image& im) {
    const double sum = std::accumulate(im.pixels.begin(), im.pixels.end(), 0.0);
    char buf[128];
    std::snprintf(buf, sizeof buf, "%lldx%lldx%lld %d-bit, pixel sum %.4f", static_cast<long long>(im.channels),
                  static_cast<long long>(im.height), static_cast<long long>(im.width), im.bits, sum);
    return buf;
}
/// A reduced, partial decode as a training view asks for one: half the size, the middle
/// half of the rows and columns (JPEG: DCT-scaled, skipped rows, cropped columns).
micle::data::decode_request middle_half(const micle::data::image_header& h) {
    micle::data::decode_request r;
    r.min_height = h.height / 2;
    r.min_width = h.width / 2;
    r.top = h.height / 4;
    r.bottom = std::max(r.top + 1, 3 * h.height / 4);
    r.left = h.width / 4;
    r.right = std::max(r.left + 1, 3 * h.width / 4);
    return r;
}
std::string region(const micle::data::source_image& s) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "; region %lldx%lldx%lld at %.3f", static_cast<long long>(s.channels),
                  static_cast<long long>(s.height), static_cast<long long>(s.width), double(s.scale_y));
    return buf;
}
template <class Bytes>
std::string byte_sum(const Bytes& bytes) {
    std::uint64_t s = 0;
    for (auto b : bytes) s += std::uint64_t(std::uint8_t(b));
    return std::to_string(s);
}
}  // namespace

/// Feeds one input to the reader of `format` (png, jpeg, dicom, npz, csv, idx, prepared, safetensors).
/// `*outcome` gets "accepted: <summary>" or "rejected: <the reader's error>".
int micle_fuzz_one(const std::string& format, const std::uint8_t* data, std::size_t size,
                   std::string* outcome = nullptr) {
    using namespace micle;
    std::string got;
    try {
        if (format == "png") {
            got = summary(data::decode_png(data, size, "fuzz.png"));
            got += region(data::decode_png_source(data, size, "fuzz.png", {}, middle_half));
        } else if (format == "jpeg") {
            got = summary(data::decode_jpeg(data, size, "fuzz.jpg"));
            got += region(data::decode_jpeg_source(data, size, "fuzz.jpg", {}, middle_half));
        } else if (format == "npz") {
            for (const auto& [name, a] : data::parse_npz(std::vector<std::uint8_t>(data, data + size), "fuzz.npz"))
                got += (got.empty() ? "" : "; ") + name + " " + a.descr + " " + join_shape(a.shape) + " byte sum " + byte_sum(a.bytes);
        } else if (format == "csv") {
            std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
            const auto d = data::parse_csv_manifest(in, csv_root(), "fuzz.csv");
            got = std::to_string(d.size()) + " images, " + std::to_string(d.num_classes) + " classes (" +
                  (d.task == data::task_kind::multilabel ? "multilabel" : "multiclass") + "), " +
                  std::to_string(d.splits.size()) + " splits";
        } else if (format == "dicom") {
            with_file(".dcm", data, size, [&](const std::filesystem::path& p) { got = summary(data::decode_dicom(p)); });
        } else if (format == "idx") {
            with_file(".idx", data, size, [&](const std::filesystem::path& p) {
                const auto a = data::read_idx(p);
                got = join_shape(a.dims) + " byte sum " + byte_sum(a.data);
            });
        } else if (format == "prepared") {
            with_file(".npz", data, size, [&](const std::filesystem::path& p) {
                const auto d = data::read_prepared(p);
                got = std::to_string(d.size()) + " samples, " + std::to_string(d.num_classes) + " classes (" +
                      (d.task == data::task_kind::multilabel ? "multilabel" : "multiclass") + "), " +
                      std::to_string(d.splits.size()) + " splits";
                for (std::int64_t i = 0; i < d.size(); ++i) {
                    const auto img = d.load_source(i);
                    char buf[96];
                    std::snprintf(buf, sizeof buf, "; %lldx%lldx%lld of %lldx%lld", static_cast<long long>(img.channels),
                                  static_cast<long long>(img.height), static_cast<long long>(img.width),
                                  static_cast<long long>(img.full_height), static_cast<long long>(img.full_width));
                    const std::string whole = summary(data::to_image(img));  // "CxHxW B-bit, pixel sum S"
                    got += buf + whole.substr(whole.find(' '));
                }
            });
        } else if (format == "safetensors") {
            with_file(".safetensors", data, size, [&](const std::filesystem::path& p) {
                safetensors::reader r(p);
                for (const auto& n : r.names()) {
                    const auto t = r.at(n).type;
                    double sum = 0;
                    if (t == safetensors::dtype::i64 || t == safetensors::dtype::i32 || t == safetensors::dtype::u8)
                        for (auto v : r.integers(n)) sum += double(v);
                    else
                        for (auto v : r.floats(n)) sum += double(v);
                    got += (got.empty() ? "" : "; ") + n + " " + join_shape(r.at(n).shape) + " sum " + std::to_string(sum);
                }
            });
        } else {
            std::fprintf(stderr, "micle_fuzz_one: unknown format %s\n", format.c_str());
            return -1;
        }
        got = "accepted: " + got;
    } catch (const micle::error& e) {
        // a clear error is the right answer to bad input; any other exception escapes
        got = std::string("rejected: ") + e.what();
    }
    if (outcome) *outcome = std::move(got);
    return 0;
}

#ifdef MICLE_FUZZ_FORMAT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return micle_fuzz_one(MICLE_FUZZ_FORMAT, data, size, nullptr);
}
#endif
