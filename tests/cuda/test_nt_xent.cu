// The template test cases of tests/contrastive/test_nt_xent.cpp on the GPU backend (see gpu_pass.hpp).
#include "gpu_pass.hpp"  // first: it sets the pass up

#include "../contrastive/test_nt_xent.cpp"
