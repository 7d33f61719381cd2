// `micle-gpu embed`: examples/cli/embed.cpp compiled as CUDA for the GPU backend.
#include "../embed.cpp"
