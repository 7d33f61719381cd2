// Replays every file of a corpus directory through one fuzz target, without libFuzzer:
//   micle_fuzz_replay FORMAT DIR
// Exits 0 when every input was handled (accepted, or rejected with an error); a crash or
// a sanitizer report fails the ctest.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

int micle_fuzz_one(const std::string& format, const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s FORMAT CORPUS_DIR\n", argv[0]);
        return 2;
    }
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(argv[2])) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path(), std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (micle_fuzz_one(argv[1], reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) != 0) return 2;
        ++n;
    }
    if (n == 0) {
        std::fprintf(stderr, "no inputs in %s\n", argv[2]);
        return 1;
    }
    std::printf("%s: %d inputs replayed without a crash\n", argv[1], n);
    return 0;
}
