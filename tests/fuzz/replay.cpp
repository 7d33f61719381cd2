// Replays inputs through one fuzz target, without libFuzzer:
//   micle_fuzz_replay FORMAT DIR                 every file of a corpus directory
//   micle_fuzz_replay --one FORMAT FILE          one file; prints "accepted: <summary>" or
//                                                "rejected: <error>" (ctest checks the
//                                                summaries of the corpus's valid files)
//   micle_fuzz_replay --max-rss-mb N FORMAT FILE...
//       each file decoded by a fresh child process (--one); fails unless every child exits
//       cleanly with a peak resident set (getrusage's ru_maxrss) of at most N MiB
// Exits 0 when every input was handled (accepted, or rejected with a micle error); a crash,
// another exception or a sanitizer report fails the ctest.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

int micle_fuzz_one(const std::string& format, const std::uint8_t* data, std::size_t size, std::string* outcome);

namespace {
std::vector<char> slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int decode_one(const std::string& format, const char* file) {
    const auto bytes = slurp(file);
    std::string outcome;
    if (micle_fuzz_one(format, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), &outcome) != 0) return 2;
    std::printf("%s\n", outcome.c_str());
    return 0;
}

/// Runs `self --one FORMAT FILE` and returns false unless it exits 0 within `max_mb`.
bool decode_in_child(const char* self, const std::string& format, const char* file, long max_mb) {
    std::fflush(stdout);
    const char* args[] = {self, "--one", format.c_str(), file, nullptr};
    pid_t pid = 0;
    if (posix_spawn(&pid, self, nullptr, nullptr, const_cast<char**>(args), environ) != 0) {
        std::fprintf(stderr, "cannot start %s\n", self);
        return false;
    }
    int status = 0;
    rusage usage{};
    if (wait4(pid, &status, 0, &usage) != pid) return false;
    const double peak_mb = double(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::printf("%s: peak resident %.1f MiB (limit %ld), %s\n", file, peak_mb, max_mb,
                clean ? "exited cleanly" : "did not exit cleanly");
    return clean && peak_mb <= double(max_mb);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc == 4 && std::string(argv[1]) == "--one") return decode_one(argv[2], argv[3]);
    if (argc >= 5 && std::string(argv[1]) == "--max-rss-mb") {
        const long max_mb = std::atol(argv[2]);
        bool ok = max_mb > 0;
        for (int i = 4; i < argc; ++i) ok = decode_in_child(argv[0], argv[3], argv[i], max_mb) && ok;
        std::printf(ok ? "every input stayed within %ld MiB\n" : "an input went over %ld MiB or crashed\n", max_mb);
        return ok ? 0 : 1;
    }
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s FORMAT CORPUS_DIR | --one FORMAT FILE | --max-rss-mb N FORMAT FILE...\n", argv[0]);
        return 2;
    }
    int n = 0, accepted = 0;
    for (const auto& e : std::filesystem::directory_iterator(argv[2])) {
        if (!e.is_regular_file()) continue;
        const auto bytes = slurp(e.path());
        std::string outcome;
        if (micle_fuzz_one(argv[1], reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), &outcome) != 0)
            return 2;
        ++n;
        accepted += outcome.starts_with("accepted");
    }
    if (n == 0) {
        std::fprintf(stderr, "no inputs in %s\n", argv[2]);
        return 1;
    }
    std::printf("%s: %d inputs replayed without a crash, %d accepted\n", argv[1], n, accepted);
    return 0;
}
