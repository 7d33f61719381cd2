// `micle-gpu info`: examples/cli/info.cpp compiled as CUDA for the GPU backend.
#include "../info.cpp"
