// `micle-gpu evaluate`: examples/cli/evaluate.cpp compiled as CUDA for the GPU backend.
#include "../evaluate.cpp"
