#pragma once
// Whole-or-nothing file writes: checkpoints, pointer files (latest, best), reports, arrays.
// A reader - or a run resumed after a crash or a full disk - sees the old file or the new
// one, never half of one.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

#include "micle/core/error.hpp"

namespace micle {

/// Writes `parts`, one after the other, to `path` whole or not at all: into a temporary
/// file beside it (`.NAME.tmp.PID`), synced to disk, renamed over `path`, and the directory
/// synced. On any failure (disk full, permissions, a missing directory) the temporary file
/// is removed, a previous file at `path` is left as it was, and E is thrown naming `what`,
/// the step that failed, the file and the system's reason.
template <class E = error>
void write_file_atomically(const std::filesystem::path& path, std::span<const std::span<const char>> parts,
                           std::string_view what) {
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    // Built with append: g++ 12 at -O3 warns (-Wrestrict, a false positive) on "." + string.
    std::string tmp_name = ".";
    tmp_name.append(path.filename().string()).append(".tmp.").append(std::to_string(::getpid()));
    const auto tmp = dir / tmp_name;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw E(detail::cat(what, ": cannot create ", tmp.string(), " (to write ", path.string(), "): ", std::strerror(errno)));
    auto fail = [&](const char* step, int err, bool is_open) {
        if (is_open) ::close(fd);
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw E(detail::cat(what, ": ", step, " ", path.string(), " failed: ", std::strerror(err),
                            " (disk full or not writable?); the previous file, if any, is unchanged"));
    };
    for (auto part : parts) {
        while (!part.empty()) {
            const ssize_t w = ::write(fd, part.data(), part.size());
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) fail("writing", w < 0 ? errno : ENOSPC, true);
            part = part.subspan(static_cast<std::size_t>(w));
        }
    }
    if (::fsync(fd) != 0) fail("syncing", errno, true);
    if (::close(fd) != 0) fail("closing", errno, false);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) fail("renaming the temporary file to", ec.value(), false);
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

/// One buffer written whole or not at all (see above).
template <class E = error>
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view what) {
    const std::span<const char> one(bytes.data(), bytes.size());
    write_file_atomically<E>(path, std::span<const std::span<const char>>(&one, 1), what);
}

}  // namespace micle
