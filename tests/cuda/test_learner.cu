// The template test cases of tests/train/test_learner.cpp on the GPU backend (see gpu_pass.hpp).
#include "gpu_pass.hpp"  // first: it sets the pass up

#include "../train/test_learner.cpp"
