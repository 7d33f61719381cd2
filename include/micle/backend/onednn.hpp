#pragma once
// The oneDNN CPU backend (needs the micle::onednn CMake target, i.e. DNNL::dnnl).
#include "micle/backend/onednn/batch_norm.hpp"
#include "micle/backend/onednn/conv2d.hpp"
#include "micle/backend/onednn/eltwise.hpp"
#include "micle/backend/onednn/linear.hpp"
#include "micle/backend/onednn/loss.hpp"
#include "micle/backend/onednn/normalize.hpp"
#include "micle/backend/onednn/nt_xent.hpp"
#include "micle/backend/onednn/pool.hpp"
#include "micle/backend/onednn/tensor.hpp"
