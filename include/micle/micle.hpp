#pragma once
// Umbrella header, as ensmallen.hpp is: a program that includes only this can build a
// model and train it. The core; the reference backend and every backend this build has
// (see the generated micle/config.hpp; the GPU backend only in translation units compiled
// as CUDA); layers, ResNets, heads, losses, pair strategies, optimizers and schedules; the
// learners, the trainer (micle::train::fit) and its callbacks, checkpoints and metrics;
// images, augmentation, datasets, splits and loaders; and, when the target micle::data is
// linked (MICLE_HAS_DATA), the file readers (micle/data/readers.hpp).
//
// The folders are layers, each including only those below it:
//   core <- backend, data <- nn <- models, heads, contrastive, optim <- dist <- train
// core declares the interfaces the layers above share (ops, concepts and backend
// capabilities, the communicator); backend implements the ops, data reads images; nn holds
// layers (cross-replica batch norm among them, talking through core's communicator);
// models, heads, contrastive and optim are the policies built from them; dist implements
// the communicator (MPI, NCCL) and wires learners for data-parallel runs; train composes it
// all. The ctest include_layers (tests/layering/check_layers.py) fails on a header that
// breaks this order.
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

#include "micle/nn/layers.hpp"
#include "micle/nn/parameter.hpp"
#include "micle/models/resnet.hpp"
#include "micle/heads/linear.hpp"
#include "micle/heads/projection.hpp"
#include "micle/contrastive/nt_xent.hpp"
#include "micle/contrastive/pairs.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/data/augment.hpp"
#include "micle/data/dataset.hpp"
#include "micle/data/image.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/limits.hpp"
#include "micle/data/loader.hpp"
#include "micle/data/split.hpp"
#include "micle/data/acquisition.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/contrastive_learner.hpp"
#include "micle/train/fit.hpp"
#include "micle/train/knn.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/safetensors.hpp"
#include "micle/train/signals.hpp"
#include "micle/train/supervised_learner.hpp"
#if defined(MICLE_HAS_DATA) && MICLE_HAS_DATA
#include "micle/data/readers.hpp"
#endif
