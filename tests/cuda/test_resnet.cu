// The template test cases of tests/models/test_resnet.cpp on the GPU backend (see gpu_pass.hpp).
#include "gpu_pass.hpp"  // first: it sets the pass up

#include "../models/test_resnet.cpp"
