// The template test cases of tests/core/test_tensor.cpp on the GPU backend (see gpu_pass.hpp).
#include "gpu_pass.hpp"  // first: it sets the pass up

#include "../core/test_tensor.cpp"
