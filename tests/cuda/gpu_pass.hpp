#pragma once
// Included first by every file in tests/cuda/: compiles one of the suite's test files a
// second time, as CUDA, so that its TEST_CASE_TEMPLATEs over MICLE_FAST_BACKENDS and
// MICLE_ALL_BACKENDS run on the GPU backend (testing.hpp lists only micle::cudnn in this
// pass). The file's plain TEST_CASEs already ran in its C++ compilation; here they become
// templates that are never instantiated, so they are parsed but neither built nor run twice.
#define MICLE_TEST_GPU_PASS 1
#include <doctest/doctest.h>

#undef TEST_CASE
#define TEST_CASE(name) template <int> [[maybe_unused]] void DOCTEST_ANONYMOUS(MICLE_CPU_ONLY_CASE_)()
