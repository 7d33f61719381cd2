#pragma once
// The reference backend: plain loops, obviously right, the oracle for every other backend.
#include "micle/backend/reference/batch_norm.hpp"
#include "micle/backend/reference/conv2d.hpp"
#include "micle/backend/reference/eltwise.hpp"
#include "micle/backend/reference/linear.hpp"
#include "micle/backend/reference/loss.hpp"
#include "micle/backend/reference/normalize.hpp"
#include "micle/backend/reference/nt_xent.hpp"
#include "micle/backend/reference/pool.hpp"
#include "micle/backend/reference/tensor.hpp"
