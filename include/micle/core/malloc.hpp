#pragma once
// Keeping large freed blocks in the process instead of handing them back to the kernel.
//
// glibc's malloc serves a request of its mmap threshold or more (128 KiB, raised to the
// largest block freed so far, but a request of that same size is again mmap'd) with a
// fresh mmap, and unmaps it on free; it also trims a heap whose free top passes the trim
// threshold. A loader that decodes 2048x2048 16-bit scans asks for several 8-32 MiB
// buffers per image (the file, the inflated rows, the decoder's own planes, the pixels),
// so every image pays for faulting in zeroed pages, which on 2 cores was half of a DICOM
// decode's time. keep_large_blocks() sets fixed thresholds instead: blocks up to
// `mmap_threshold` come from the heap and freed ones are reused; a heap is trimmed only
// when more than `trim_threshold` of it is free. Memory then stays at the loader's high
// water mark (workers x prefetch x batch images), not below it.
//
// train::fit calls it (fit_options::keep_large_blocks) and so does the micle CLI. It
// changes the whole process's allocator, so a program that tunes malloc itself opts out;
// it does nothing when the user set MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or a
// glibc.malloc tunable, when the C library is not glibc, or under a sanitizer's allocator.
#include <cstddef>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MICLE_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define MICLE_SANITIZER_ALLOCATOR 1
#endif
#endif

namespace micle {

struct malloc_tuning {
    bool applied = false;          ///< both thresholds were set
    const char* reason = "";       ///< why not, when not
    std::size_t mmap_threshold = 0, trim_threshold = 0;
};

/// glibc refuses an mmap threshold over half its heap size (32 MiB on 64-bit systems).
inline constexpr std::size_t default_mmap_threshold = std::size_t(32) << 20;
inline constexpr std::size_t default_trim_threshold = std::size_t(256) << 20;

/// Sets malloc's mmap and trim thresholds for a process that allocates and frees
/// image-sized buffers (see the top of this file). Idempotent; safe to call from any thread
/// before the loader starts.
inline malloc_tuning keep_large_blocks(std::size_t mmap_threshold = default_mmap_threshold,
                                       std::size_t trim_threshold = default_trim_threshold) {
    malloc_tuning t;
    t.mmap_threshold = mmap_threshold, t.trim_threshold = trim_threshold;
#if defined(MICLE_SANITIZER_ALLOCATOR)
    t.reason = "a sanitizer's allocator serves malloc";
#elif defined(__GLIBC__)
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
        (tunables && std::strstr(tunables, "glibc.malloc"))) {
        t.reason = "the environment sets malloc's thresholds";
        return t;
    }
    if (mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) != 1 || mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) != 1) {
        t.reason = "mallopt refused the thresholds";
        return t;
    }
    t.applied = true;
#else
    t.reason = "not glibc";
#endif
    return t;
}

}  // namespace micle
