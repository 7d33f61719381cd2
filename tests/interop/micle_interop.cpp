// The micle side of the torchvision interoperability check (driven by
// tests/interop/torchvision_interop.py):
//   micle_interop --arch resnet18|resnet50 --input X.safetensors --output OUT.safetensors
//                 [--weights W.safetensors | --seed S] [--save-weights W2.safetensors]
// Builds the ResNet with torchvision's 1000-class head, loads W strictly (or initialises
// from S), writes W2 if asked, then writes to OUT: "logits" of input "x" in inference
// mode, and, when the input has "dlogits", the gradient "grad.<name>" of every parameter
// for a training-mode forward pass followed by backward(dlogits).
#include <micle/micle.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "micle/models/resnet.hpp"
#include "micle/train/checkpoint.hpp"

// The CPU backend: the numbers are compared with PyTorch's fp32 ones at tight tolerances
// (the GPU backend is compared with the reference backend by the test suite instead).
#if MICLE_HAS_ONEDNN
using B = micle::onednn;
#else
using B = micle::reference;
#endif

int main(int argc, char** argv) {
    std::string arch, input, output, weights, save;
    std::uint64_t seed = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--arch") arch = v;
        else if (k == "--input") input = v;
        else if (k == "--output") output = v;
        else if (k == "--weights") weights = v;
        else if (k == "--save-weights") save = v;
        else if (k == "--seed") seed = std::strtoull(v.c_str(), nullptr, 10);
        else {
            std::fprintf(stderr, "micle_interop: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if ((arch != "resnet18" && arch != "resnet50") || input.empty() || output.empty()) {
        std::fprintf(stderr, "usage: micle_interop --arch resnet18|resnet50 --input X --output OUT [--weights W | --seed S] [--save-weights W2]\n");
        return 2;
    }
    try {
        micle::context<B> ctx;
        micle::models::resnet_config cfg;
        cfg.depth = arch == "resnet18" ? 18 : 50;
        cfg.num_classes = 1000;
        micle::models::resnet<B> model(ctx, cfg, seed);
        auto state = model.state();
        if (!weights.empty()) micle::train::load_weights(weights, ctx, state);
        if (!save.empty()) micle::train::save_weights(save, ctx, state, {{"arch", arch}});

        const micle::safetensors::reader in(input);
        const auto& xi = in.at("x");
        const auto x = micle::tensor<B>::from_host(ctx, xi.dims(), in.floats("x"));
        micle::safetensors::writer out;
        out.add_f32("logits", micle::shape{xi.shape[0], 1000}, model.forward(ctx, x, false).to_host(ctx));
        if (in.contains("dlogits")) {
            model.forward(ctx, x, true);
            model.backward(ctx, micle::tensor<B>::from_host(ctx, {xi.shape[0], 1000}, in.floats("dlogits")));
            for (auto* p : state.params) out.add_f32("grad." + p->name, p->value.shape(), p->grad.to_host(ctx));
        }
        out.write(output);
        std::printf("micle_interop: %s on %s, %zu parameters, wrote %s\n", arch.c_str(), std::string(B::name).c_str(),
                    state.params.size(), output.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "micle_interop: %s\n", e.what());
        return 1;
    }
    return 0;
}
