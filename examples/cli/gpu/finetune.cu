// `micle-gpu finetune`: examples/cli/finetune.cpp compiled as CUDA for the GPU backend.
#include "../finetune.cpp"
