#pragma once
// Whole-or-nothing file writes: checkpoints, pointer files (latest, best), reports, arrays.
// A reader - or a run resumed after a crash or a full disk - sees the old file or the new
// one, never half of one.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

#include "micle/core/error.hpp"

namespace micle {

/// A file written whole or not at all, in as many pieces as the writer likes: the bytes go
/// into a temporary file beside `path` (`.NAME.tmp.PID`), and commit() syncs it to disk,
/// renames it over `path` and syncs the directory. On any failure (disk full, permissions,
/// a missing directory), or when the writer is destroyed uncommitted (an exception, an
/// interrupted run), the temporary file is removed and a previous file at `path` is left as
/// it was; a failure throws E naming `what`, the step that failed, the file and the
/// system's reason.
template <class E = error>
class atomic_file {
public:
    atomic_file(std::filesystem::path path, std::string_view what) : path_(std::move(path)), what_(what) {
        const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
        // Built with append: g++ 12 at -O3 warns (-Wrestrict, a false positive) on "." + string.
        std::string tmp_name = ".";
        tmp_name.append(path_.filename().string()).append(".tmp.").append(std::to_string(::getpid()));
        tmp_ = dir / tmp_name;
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw E(detail::cat(what_, ": cannot create ", tmp_.string(), " (to write ", path_.string(), "): ",
                                std::strerror(errno)));
    }
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) {
            std::error_code ignored;
            std::filesystem::remove(tmp_, ignored);
        }
    }

    /// Appends `bytes`.
    void write(std::string_view bytes) {
        check_open();
        while (!bytes.empty()) {
            const ssize_t w = ::write(fd_, bytes.data(), bytes.size());
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) fail("writing", w < 0 ? errno : ENOSPC);
            bytes.remove_prefix(static_cast<std::size_t>(w));
            written_ += static_cast<std::uint64_t>(w);
        }
    }
    /// Bytes appended so far.
    std::uint64_t size() const noexcept { return written_; }
    const std::filesystem::path& path() const noexcept { return path_; }

    /// Makes the file appear at `path`, whole.
    void commit() {
        check_open();
        if (::fsync(fd_) != 0) fail("syncing", errno);
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) fail("closing", errno);
        std::error_code ec;
        std::filesystem::rename(tmp_, path_, ec);
        if (ec) fail("renaming the temporary file to", ec.value());
        committed_ = true;
        const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
        if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }

private:
    void check_open() const {
        if (fd_ < 0) throw E(detail::cat(what_, ": ", path_.string(), " is already committed or failed"));
    }
    [[noreturn]] void fail(const char* step, int err) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        std::error_code ignored;
        std::filesystem::remove(tmp_, ignored);
        throw E(detail::cat(what_, ": ", step, " ", path_.string(), " failed: ", std::strerror(err),
                            " (disk full or not writable?); the previous file, if any, is unchanged"));
    }

    std::filesystem::path path_, tmp_;
    std::string what_;
    int fd_ = -1;
    bool committed_ = false;
    std::uint64_t written_ = 0;
};

/// Writes `parts`, one after the other, to `path` whole or not at all (atomic_file).
template <class E = error>
void write_file_atomically(const std::filesystem::path& path, std::span<const std::span<const char>> parts,
                           std::string_view what) {
    atomic_file<E> f(path, what);
    for (auto part : parts) f.write(std::string_view(part.data(), part.size()));
    f.commit();
}

/// One buffer written whole or not at all (see above).
template <class E = error>
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view what) {
    const std::span<const char> one(bytes.data(), bytes.size());
    write_file_atomically<E>(path, std::span<const std::span<const char>>(&one, 1), what);
}

}  // namespace micle
