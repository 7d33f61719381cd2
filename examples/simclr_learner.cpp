// The contrastive learner in a few lines: SimCLR on a small ResNet-18, a checkpoint in
// torchvision's names, and the same model reloaded.
//
// Views here are synthetic (each sample's second view is the first plus noise) so the
// example needs no dataset; the data pipeline (micle::data) supplies real augmented views.
// Usage: micle_simclr_learner [steps] [out.safetensors]
#include <micle/micle.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "micle/contrastive/nt_xent.hpp"
#include "micle/heads/projection.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/contrastive_learner.hpp"

using B = micle::default_backend;  // micle::onednn, or micle::reference, or micle::cudnn
using learner = micle::contrastive_learner<B, micle::models::resnet, micle::heads::projection,
                                           micle::contrastive::nt_xent, micle::optim::lars>;

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 20;
    const std::string out = argc > 2 ? argv[2] : "simclr_resnet18.safetensors";
    try {
        micle::context<B> ctx;
        learner::config cfg;
        cfg.backbone.depth = 18;
        cfg.backbone.stem = micle::models::stem_kind::small;  // 32 px images
        cfg.head = micle::heads::projection_config::simclr_v1();
        cfg.loss.temperature = 0.1f;
        cfg.optimizer.weight_decay = 1e-6f;  // LARS, trust coefficient 0.001
        cfg.seed = 42;
        learner simclr(ctx, cfg);

        const std::int64_t n = 16, res = 32;
        // SimCLR's rule, as everywhere in micle: base x batch / 256, the batch counted in pairs.
        const micle::optim::warmup_cosine schedule{micle::optim::scaled_lr(0.3f, n, micle::optim::lr_scaling::linear),
                                                   steps / 10, steps};
        micle::rng gen(7);
        std::vector<float> views(static_cast<std::size_t>(2 * n * 3 * res * res));
        for (int s = 0; s < steps; ++s) {
            const std::size_t half = views.size() / 2;
            for (std::size_t i = 0; i < half; ++i) {
                views[i] = gen.normal();
                views[half + i] = views[i] + 0.3f * gen.normal();
            }
            const auto batch = micle::tensor<B>::from_host(ctx, {2 * n, 3, res, res}, views);
            const float loss = simclr.step(batch, schedule(s));
            std::printf("step %2d  lr %.4f  loss %.4f\n", s, double(schedule(s)), double(loss));
        }

        micle::train::save_weights(out, ctx, simclr.state(), {{"method", "simclr"}});
        std::printf("saved %s (%lld parameters; loads into torchvision's resnet18 with strict=False for head.*)\n",
                    out.c_str(), static_cast<long long>(simclr.state().parameter_count()));

        learner again(ctx, cfg);
        auto state = again.state();
        micle::train::load_weights(out, ctx, state);
        std::printf("reloaded into a fresh learner: %zu tensors\n", state.params.size() + state.buffers.size());
    } catch (const micle::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
