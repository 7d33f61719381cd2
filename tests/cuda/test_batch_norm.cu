// The template test cases of tests/backend/test_batch_norm.cpp on the GPU backend (see gpu_pass.hpp).
#include "gpu_pass.hpp"  // first: it sets the pass up

#include "../backend/test_batch_norm.cpp"
