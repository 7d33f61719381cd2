#pragma once
// Umbrella header: the core, the reference backend, and every backend this build has
// (see the generated micle/config.hpp); the GPU backend only in translation units compiled
// as CUDA.
#include "micle/config.hpp"
#include "micle/core/backend.hpp"
#include "micle/core/concepts.hpp"
#include "micle/core/dtype.hpp"
#include "micle/core/error.hpp"
#include "micle/core/ops.hpp"
#include "micle/core/shape.hpp"
#include "micle/core/upload.hpp"
#include "micle/backend/reference.hpp"
#if MICLE_HAS_ONEDNN
#include "micle/backend/onednn.hpp"
#endif
#if MICLE_HAS_CUDNN && defined(__CUDACC__)  // the GPU backend's headers need nvcc
#include "micle/backend/cudnn.hpp"
#endif
