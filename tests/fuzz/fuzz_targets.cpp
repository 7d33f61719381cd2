// libFuzzer entry points for every parser of untrusted input. Each target feeds the bytes
// to one reader; a micle error (std::exception) is the expected answer to bad input, and
// anything else - a crash, a sanitizer report, a hang - is a bug.
//
// Built twice: with clang -fsanitize=fuzzer,address,undefined as fuzz_<format> (cmake
// -DMICLE_BUILD_FUZZERS=ON -DCMAKE_CXX_COMPILER=clang++; MICLE_FUZZ_FORMAT picks the
// target), and with a plain main() (replay.cpp) as micle_fuzz_replay, which ctest runs
// over tests/fuzz/corpus/<format>/ in every build, the sanitizer build included.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "micle/data/csv.hpp"
#include "micle/data/decode.hpp"
#include "micle/data/dicom.hpp"
#include "micle/data/idx.hpp"
#include "micle/data/npz.hpp"
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
}  // namespace

/// Feeds one input to the reader of `format` (png, jpeg, dicom, npz, csv, idx, safetensors);
/// the reader's error message, if any, goes to `*rejected`.
int micle_fuzz_one(const std::string& format, const std::uint8_t* data, std::size_t size,
                   std::string* rejected = nullptr) {
    using namespace micle;
    try {
        if (format == "png") {
            data::decode_png(data, size, "fuzz.png");
        } else if (format == "jpeg") {
            data::decode_jpeg(data, size, "fuzz.jpg");
        } else if (format == "npz") {
            data::parse_npz(std::vector<std::uint8_t>(data, data + size), "fuzz.npz");
        } else if (format == "csv") {
            std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
            data::parse_csv_manifest(in, "/nonexistent-micle-fuzz", "fuzz.csv");
        } else if (format == "dicom") {
            with_file(".dcm", data, size, [](const std::filesystem::path& p) { data::decode_dicom(p); });
        } else if (format == "idx") {
            with_file(".idx", data, size, [](const std::filesystem::path& p) { data::read_idx(p); });
        } else if (format == "safetensors") {
            with_file(".safetensors", data, size, [](const std::filesystem::path& p) {
                safetensors::reader r(p);
                for (const auto& n : r.names()) {
                    const auto t = r.at(n).type;
                    if (t == safetensors::dtype::i64 || t == safetensors::dtype::i32 || t == safetensors::dtype::u8)
                        r.integers(n);
                    else
                        r.floats(n);
                }
            });
        } else {
            std::fprintf(stderr, "micle_fuzz_one: unknown format %s\n", format.c_str());
            return -1;
        }
    } catch (const std::exception& e) {
        // a clear error is the right answer to bad input
        if (rejected) *rejected = e.what();
    }
    return 0;
}

#ifdef MICLE_FUZZ_FORMAT
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return micle_fuzz_one(MICLE_FUZZ_FORMAT, data, size, nullptr);
}
#endif
