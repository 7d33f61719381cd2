// SimCLR pretraining with the library alone - no CLI code: a MedMNIST-layout .npz (or an
// IDX directory such as Debian's Fashion-MNIST), micle::train::fit, the stock callbacks
// and one of our own. With the settings below it trains exactly what
//   micle pretrain --data DATA --out OUT --epochs E --batch-size 8 --arch resnet18 --stem small
//                  --base-channels 4 --image-size 16
// trains (tests/cli/test_cli.py checks that the weights are bitwise equal).
// Usage: micle_pretrain_fit DATA OUT_DIR [EPOCHS]
#include <micle/micle.hpp>  // everything; the readers too, with the CMake target micle::data

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mt = micle::train;
using B = micle::default_backend;
using learner = micle::contrastive_learner<B, micle::models::resnet, micle::heads::projection, micle::contrastive::nt_xent,
                                           micle::optim::lars>;

int main(int argc, char** argv) {
    if (argc < 3) return std::fprintf(stderr, "usage: %s DATA OUT_DIR [EPOCHS]\n", argv[0]), 2;
    try {
        const std::string data = argv[1];
        const auto images = data.ends_with(".npz") ? micle::data::read_medmnist(data, "train")
                                                   : micle::data::read_idx_dataset(data, "train");
        micle::context<B> ctx;
        learner::config cfg;
        cfg.backbone.depth = 18;
        cfg.backbone.stem = micle::models::stem_kind::small;
        cfg.backbone.base_channels = 4;
        cfg.backbone.in_channels = images.load(0).channels;  // the data's channels
        cfg.head = micle::heads::projection_config::simclr_v1();
        cfg.optimizer.weight_decay = 1e-6f;  // LARS, trust coefficient 0.001
        learner simclr(ctx, cfg);
        const micle::contrastive::augmented_views pairs(images, micle::data::augment_config::simclr(16), cfg.backbone.in_channels, 0);

        mt::fit_options opt;
        opt.epochs = argc > 3 ? std::atoi(argv[3]) : 1;
        opt.batch = 8;                                                                   // pairs per step
        opt.lr = micle::optim::scaled_lr(0.3f, opt.batch, micle::optim::lr_scaling::linear);  // SimCLR: 0.3 x N / 256
        opt.run_dir = argv[2];
        const auto r = mt::fit(simclr, pairs, opt, mt::progress(), mt::jsonl(opt.run_dir / "metrics.jsonl"),
                               [](const mt::step_info& s) {  // a callback of our own: a line every 5 steps
                                   if (s.step % 5 == 0) std::printf("step %lld: loss %.4f\n", (long long)s.step, s.loss);
                               });
        std::printf("%lld steps in %.1f s, last checkpoint %s\n", (long long)r.steps_done, r.seconds, r.last_checkpoint.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
