#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "micle/core/malloc.hpp"
#include "testing.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

TEST_CASE("keep_large_blocks: a freed 8 MiB image buffer stays in the heap for the next image; the environment wins") {
#if defined(MICLE_SANITIZER_ALLOCATOR)
    const auto t = micle::keep_large_blocks();
    CHECK_FALSE(t.applied);
    CHECK(std::string(t.reason).find("sanitizer") != std::string::npos);
#elif defined(__GLIBC__)
    ::setenv("MALLOC_TRIM_THRESHOLD_", "1", 1);  // read by glibc at start only; keep_large_blocks defers to it
    const auto deferred = micle::keep_large_blocks();
    ::unsetenv("MALLOC_TRIM_THRESHOLD_");
    CHECK_FALSE(deferred.applied);
    CHECK(std::string(deferred.reason).find("environment") != std::string::npos);
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("GLIBC_TUNABLES")) return;  // the run's own choice

    const auto t = micle::keep_large_blocks();
    REQUIRE(t.applied);
    CHECK(t.mmap_threshold == micle::default_mmap_threshold);
    const std::size_t size = std::size_t(8) << 20;
    const auto mapped_before = mallinfo2().hblkhd;
    {
        std::vector<char> image(size);  // a 2048x2048 16-bit scan
        std::memset(image.data(), 1, size);
        CHECK(mallinfo2().hblkhd == mapped_before);  // from the heap, not a fresh mmap
    }
    CHECK(mallinfo2().fordblks >= size);  // freed, and kept for the next one
#else
    CHECK_FALSE(micle::keep_large_blocks().applied);
#endif
}
