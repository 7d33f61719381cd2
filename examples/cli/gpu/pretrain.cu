// `micle-gpu pretrain`: examples/cli/pretrain.cpp compiled as CUDA for the GPU backend.
#include "../pretrain.cpp"
