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
#include <iterator>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>

#include "micle/data/chest_xray.hpp"
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
            // The chest X-ray layouts' images (chest_source below): CheXpert's nested paths,
            // NIH's images/ folder, a MIMIC-CXR-JPG root with its labels and split files.
            for (const char* name : {"train/patient00001/study1/view1_frontal.jpg", "train/patient00001/study1/view2_lateral.jpg",
                                     "train/patient00002/study1/view1_frontal.jpg", "images/00000001_000.png",
                                     "images/00000002_000.png", "mimic/files/p10/p10000032/s50414267/d1.jpg",
                                     "mimic/files/p10/p10000032/s50414267/d2.jpg"}) {
                std::filesystem::create_directories((p / name).parent_path());
                std::ofstream(p / name).put('\n');
            }
            std::ofstream(p / "mimic" / "mimic-cxr-2.0.0-metadata.csv")
                << "dicom_id,subject_id,study_id,ViewPosition\nd1,10000032,50414267,PA\nd2,10000032,50414267,LATERAL\n";
            std::ofstream(p / "mimic" / "mimic-cxr-2.0.0-chexpert.csv")
                << "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n10000032,50414267,1.0,-1.0,,0.0,1.0\n";
            std::ofstream(p / "mimic" / "mimic-cxr-2.0.0-split.csv") << "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,test\n";
        }
        ~root() { std::filesystem::remove_all(p); }
    } r;
    return r.p;
}

/// A chest X-ray layout's file, found by its header as open.hpp finds it (CheXpert's or
/// NIH's CSV; a MIMIC-CXR-JPG metadata, labels or split file), written where that layout
/// reads it under csv_root() and read as the layout; nothing for any other CSV.
std::optional<micle::data::dataset> read_chest_layout(const std::string& text) {
    using namespace micle::data;
    const auto& root = csv_root();
    auto starts = [&](const char* h) { return text.rfind(h, 0) == 0; };
    struct restore {  // a MIMIC file put back as it was, whatever the input did
        std::filesystem::path p;
        std::string old;
        ~restore() {
            if (!p.empty()) std::ofstream(p, std::ios::binary) << old;
        }
    } undo;
    auto put = [&](const std::filesystem::path& p, bool keep) {
        if (keep) {
            std::ifstream in(p, std::ios::binary);
            undo.old.assign(std::istreambuf_iterator<char>(in), {});
            undo.p = p;
        }
        std::ofstream(p, std::ios::binary) << text;
        return p;
    };
    if (starts("Path,Sex,Age,Frontal/Lateral")) return read_chexpert(put(root / "train.csv", false));
    if (starts("Image Index,Finding Labels")) return read_nih(put(root / "Data_Entry_2017.csv", false));
    for (const auto& [file, header] : {std::pair{"mimic-cxr-2.0.0-metadata.csv", "dicom_id,subject_id,study_id"},
                                       std::pair{"mimic-cxr-2.0.0-chexpert.csv", "subject_id,study_id,"},
                                       std::pair{"mimic-cxr-2.0.0-split.csv", "dicom_id,study_id,subject_id,split"}})
        if (starts(header)) {
            put(root / "mimic" / file, true);
            return read_mimic_cxr(root / "mimic");
        }
    return std::nullopt;
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
            const std::string text(reinterpret_cast<const char*>(data), size);
            std::istringstream in(text);
            const auto chest = read_chest_layout(text);
            const auto d = chest ? *chest : data::parse_csv_manifest(in, csv_root(), "fuzz.csv");
            got = std::to_string(d.size()) + " images, " + std::to_string(d.num_classes) + " classes (" +
                  (d.task == data::task_kind::multilabel ? "multilabel" : "multiclass") + "), " +
                  std::to_string(d.splits.size()) + " splits";
            if (chest) {
                std::size_t kept = 0;
                for (float t : d.targets) kept += !data::is_left_out(t);
                got += ", " + std::to_string(kept) + " label entries kept of " + std::to_string(d.targets.size()) + ", " +
                       std::to_string(d.studies.size()) + " study ids";
            }
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
