#pragma once
// The GPU backend's own CUDA kernels, by op family: elementwise ops, layout changes and
// pooling (kernels/eltwise.cuh); row-wise losses, L2 normalisation and NT-Xent's masked
// softmax (kernels/rows.cuh); the fused optimizer updates (kernels/optim.cuh); what they
// share (kernels/common.cuh). cuDNN and cuBLAS do the convolutions, batch norm, pooling and
// matrix products; these fill the gaps. Every kernel has a host launcher taking the stream
// first. Reductions accumulate in a fixed order (no atomics), so results are bitwise
// reproducible run to run.
#include "micle/backend/cudnn/kernels/common.cuh"
#include "micle/backend/cudnn/kernels/eltwise.cuh"
#include "micle/backend/cudnn/kernels/optim.cuh"
#include "micle/backend/cudnn/kernels/rows.cuh"
