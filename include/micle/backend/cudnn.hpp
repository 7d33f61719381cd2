#pragma once
// The cuDNN/cuBLAS GPU backend (needs the micle::cudnn CMake target). Its headers hold
// CUDA kernels, so include this only from translation units compiled as CUDA (.cu files,
// or set_source_files_properties(... LANGUAGE CUDA)).
#if !defined(__CUDACC__)
#error "micle/backend/cudnn.hpp holds CUDA kernels: compile this translation unit as CUDA (nvcc)"
#endif
#include "micle/backend/cudnn/batch_norm.hpp"
#include "micle/backend/cudnn/conv2d.hpp"
#include "micle/backend/cudnn/eltwise.hpp"
#include "micle/backend/cudnn/linear.hpp"
#include "micle/backend/cudnn/loss.hpp"
#include "micle/backend/cudnn/normalize.hpp"
#include "micle/backend/cudnn/nt_xent.hpp"
#include "micle/backend/cudnn/optim.hpp"
#include "micle/backend/cudnn/pool.hpp"
#include "micle/backend/cudnn/tensor.hpp"
#include "micle/backend/cudnn/upload.hpp"
