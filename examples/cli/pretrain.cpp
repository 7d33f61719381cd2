// micle pretrain: SimCLR or MICLe contrastive pretraining - argument parsing, then
// micle::train::pretrain (train/recipes.hpp).
#include "common.hpp"

namespace micle::cli {

namespace {
const std::string pretrain_usage_text = std::string(
    "usage: micle pretrain --data SPEC --out DIR [options]\n"
    "  --data SPEC            CSV manifest, MedMNIST .npz, prepared dataset (micle prepare), IDX directory, fashion-mnist,\n"
    "                         or chexpert:train.csv, mimic-cxr:ROOT, nih:Data_Entry_2017.csv (docs/datasets.md)\n"
    "  --out DIR              run directory (checkpoints, metrics.jsonl, config.json)\n"
    "  --pairs simclr|micle   positive pairs: two views of one image, or two images of a patient (simclr)\n"
    "  --bag patient|study    micle: a bag is a patient's images (patient), or one study's: its frontal and lateral\n"
    "                         views of one visit (CheXpert, MIMIC-CXR)\n"
    "  --simulated-bags SEED  MICLe without patient ids: each image becomes a simulated patient of 2-4 simulated\n"
    "                         acquisitions of it (gamma, contrast, blur, resampling, noise, a small shift); no label read\n"
    "  --label-bags SEED      same-class positives: images of one class grouped into bags of 1-4 (labels used in\n"
    "                         pretraining: supervised contrastive learning, not MICLe)\n"
    "  --arch resnet18|34|50|101|152 (resnet18)   --width 1|2|4 (1)   --stem imagenet|small (imagenet)\n"
    "  --base-channels C      stem width before the multiplier (64, torchvision's)\n"
    "  --channels 1|3         model input channels (the data's)\n"
    "  --image-size S         view size in pixels (224)\n"
    "  --augment simclr|chest_xray (simclr)\n"
    "  --crop-min A  --rotation DEG  --jitter S   over the preset's: smallest crop area (simclr 0.08),\n"
    "                        rotation +-DEG (chest_xray 45), colour jitter strength (simclr 1, chest_xray 0.5)\n"
    "  --epochs E (10)  --batch-size N pairs per step (64)\n"
    "  --optimizer lars|sgd|adamw (lars)  --lr BASE (lars/sgd 0.3, adamw 1e-3; lars and sgd use BASE x N / 256)\n"
    "  --weight-decay WD (lars 1e-6, sgd 1e-4, adamw 1e-2)  --warmup-epochs W (10% of the epochs)\n"
    "  --temperature T (") + micle::detail::cat(contrastive::nt_xent_config{}.temperature) + ")\n" +
    std::string(
    "  --init CKPT            start from a checkpoint (micle run dir or torchvision-named .safetensors)\n"
    "  --max-samples N        use a seeded random subset of N training images\n"
    "  --knn-every K          every K epochs, kNN accuracy (k 20, cosine) of the backbone on the val split -> metrics.jsonl\n"
    "  --knn-samples M (2000) images of the train and val splits the kNN monitor uses\n"
    "  --workers W (2)  --seed S (0)  --resume   continue the run in --out from its latest checkpoint\n"
    "  --checkpoint-every N   also checkpoint every N steps   --keep-last K (1) checkpoints kept\n"
    "  --stop-after K         stop after epoch K, checkpointed (for time-limited jobs; --resume continues)\n");
}  // namespace
const char* pretrain_usage = pretrain_usage_text.c_str();

int pretrain(int argc, char** argv) {
    const options o(argc, argv, 2,
                    with_training_options({"pairs", "bag", "simulated-bags", "label-bags", "augment", "crop-min", "rotation", "jitter", "temperature", "knn-every", "knn-samples"}),
                    {"resume"});
    if (o.help()) return std::printf("%s%s%s", pretrain_usage, data_usage, backend_usage), 0;
    train::pretrain_recipe r;
    r.fit = fit_options_from(o);
    r.pairs = o.str("pairs", "simclr");
    r.augment = o.str("augment", "simclr");
    const auto bag = o.str("bag", "patient");
    if (bag != "patient" && bag != "study") throw usage_error("--bag must be patient or study, not '" + bag + "'");
    if (o.has("bag") && r.pairs != "micle") throw usage_error("--bag chooses MICLe's bags: give --pairs micle too");
    r.bag = bag == "study" ? contrastive::bag_by::study : contrastive::bag_by::patient;
    if (o.has("crop-min")) r.crop_area_min = float(o.number("crop-min", 0));
    if (o.has("rotation")) r.rotation_degrees = float(o.number("rotation", 0));
    if (o.has("jitter")) r.jitter_strength = float(o.number("jitter", 0));
    r.image_size = o.integer("image-size", 224);
    r.model = model_options(o);
    r.optimizer = optimizer_from(o, "lars");
    if (o.has("temperature")) r.temperature = float(o.number("temperature", 0));
    r.warmup_epochs = o.integer("warmup-epochs", -1);
    r.seed = std::uint64_t(o.integer("seed", 0));
    r.init = o.str("init");
    r.knn_every = o.integer("knn-every", 0);
    r.knn_samples = o.integer("knn-samples", 2000);
    // under mpirun: data-parallel, --batch-size pairs in total
    const bool lead = world().rank() == 0;
    auto images = data::random_subset(load_split(o, "train"), o.integer("max-samples", INT64_MAX), r.seed);
    if (o.has("simulated-bags") && o.has("label-bags")) throw usage_error("give one of --simulated-bags and --label-bags");
    if (o.has("simulated-bags")) {
        images = data::simulate_acquisitions(images, std::uint64_t(o.integer("simulated-bags", 0)));
        if (lead)
            std::fprintf(stderr, "micle: SIMULATED patients: each image a bag of 2-4 simulated acquisitions (%lld instances, seed %lld; "
                                 "no label read)\n", (long long)images.size(), o.integer("simulated-bags", 0));
    }
    if (o.has("label-bags")) {
        data::simulate_bags(images, std::uint64_t(o.integer("label-bags", 0)));
        if (lead)
            std::fprintf(stderr, "micle: SAME-CLASS bags (1-4 images of one class, seed %lld): labels used in pretraining; "
                                 "positives are same-class images, not one patient's\n", o.integer("label-bags", 0));
    }
    context<backend> ctx = make_context(o);
    training_ranks ranks(ctx);
    r.comm = &ranks.comm();
    if (lead) std::fprintf(stderr, "micle: running on %s%s\n", describe(ctx).c_str(), ranks.text().c_str());
    std::apply([&](auto&&... cb) { train::pretrain(ctx, images, split_for(o, "val", "--knn-every"), r, cb...); },
               cli_callbacks(o, r.fit));
    if (const int code = stopped_by_signal(*r.comm, "pretrain", r.fit.run_dir)) return code;
    if (lead) std::printf("pretrained %s: %s\n", r.pairs.c_str(), (r.fit.run_dir / "latest").c_str());
    return 0;
}

}  // namespace micle::cli
