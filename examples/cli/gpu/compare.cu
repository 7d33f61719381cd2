// `micle-gpu compare`: examples/cli/compare.cpp compiled as CUDA for the GPU backend.
#include "../compare.cpp"
