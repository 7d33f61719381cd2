// micle::train::pretrain and finetune (the recipes the `micle` trainer is a shell over):
// bitwise what a hand-built learner and train::fit train, on the reference backend; MICLe
// bags and the kNN monitor; fine-tuning on a label fraction with validation, `best`
// selection and evaluate_checkpoint agreeing with what validation recorded; the errors.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "knn_oracle.hpp"
#include "learners.hpp"
#include "run_fixtures.hpp"
#include "micle/data/split.hpp"
#include "micle/train/evaluation.hpp"
#include "micle/train/recipes.hpp"

using namespace micle;
namespace fs = std::filesystem;
using testing::temp_dir;
using testing::tiny_images;

namespace {

train::pretrain_recipe tiny_recipe(const fs::path& dir, std::vector<std::string>* log) {
    train::pretrain_recipe r;
    r.image_size = 8;
    r.model = {{"arch", "resnet18"}, {"stem", "small"}, {"base-channels", "4"}};
    r.seed = 5;
    r.fit.epochs = 2;
    r.fit.batch = 4;
    r.fit.run_dir = dir;
    r.log = [log](const std::string& line) { log->push_back(line); };
    return r;
}

template <class Learner>
std::vector<std::vector<float>> all_values(Learner& l) {
    std::vector<std::vector<float>> out;
    auto s = l.state();
    for (auto* p : s.params) out.push_back(p->value.to_host(l.ctx()));
    for (auto* b : s.buffers) out.push_back(b->value.to_host(l.ctx()));
    return out;
}

/// The learner tiny_recipe builds, by hand.
using recipe_learner = testing::simclr_lars<reference>;
recipe_learner::config recipe_learner_config() {
    recipe_learner::config cfg;
    cfg.backbone.depth = 18;
    cfg.backbone.stem = models::stem_kind::small;
    cfg.backbone.base_channels = 4;
    cfg.backbone.in_channels = 1;  // the data's
    cfg.head = heads::projection_config::simclr_v1();
    cfg.loss.temperature = 0.1f;
    cfg.optimizer.weight_decay = 1e-6f;
    cfg.seed = 5;
    return cfg;
}

/// Every epoch's metrics, as a callback sees them.
struct epoch_log {
    std::vector<std::map<std::string, double>>* out;
    void on_epoch_end(train::epoch_info& e) { out->push_back(e.metrics); }
};

}  // namespace

TEST_CASE("pretrain recipe: bitwise the weights of a hand-built learner trained by fit (reference backend)") {
    context<reference> ctx;
    const auto images = tiny_images();
    temp_dir a, b;
    std::vector<std::string> log;
    const auto r = train::pretrain(ctx, images, std::nullopt, tiny_recipe(a.path, &log));
    CHECK(r.steps_done == 6);

    using learner = recipe_learner;
    const auto cfg = recipe_learner_config();
    learner by_hand(ctx, cfg);
    train::fit_options fo;
    fo.epochs = 2;
    fo.batch = 4;
    fo.lr = optim::scaled_lr(0.3f, 4, optim::lr_scaling::linear);
    fo.run_dir = b.path;
    train::fit(by_hand, contrastive::augmented_views(images, data::augment_config::simclr(8), 1, 5), fo);

    learner reloaded(ctx, cfg);
    const auto meta = train::load_checkpoint(r.last_checkpoint, reloaded);
    CHECK(meta.at("method") == "simclr");
    CHECK(meta.at("channels") == "1");
    const auto want = all_values(by_hand), got = all_values(reloaded);
    REQUIRE(got.size() == want.size());
    for (std::size_t t = 0; t < got.size(); ++t) CHECK(got[t] == want[t]);
    CHECK(fs::exists(a.path / "config.json"));
}

TEST_CASE("pretrain recipe: MICLe bags from patient ids, the kNN monitor every epoch, and its errors") {
    context<reference> ctx;
    auto images = tiny_images();
    for (std::size_t i = 0; i < images.patients.size(); ++i) images.patients[i] = std::int64_t(i / 2);  // 6 patients x 2
    temp_dir dir;
    std::vector<std::string> log;
    auto recipe = tiny_recipe(dir.path, &log);
    recipe.pairs = "micle";
    recipe.knn_every = 1;
    recipe.knn_samples = 10;
    recipe.fit.batch = 3;  // 3 bags a step, 2 steps an epoch
    recipe.fit.keep_last = 2;  // both epochs' checkpoints, for the kNN oracle
    std::vector<std::map<std::string, double>> epochs;
    const auto val = tiny_images(9);
    const auto r = train::pretrain(ctx, images, val, recipe, epoch_log{&epochs});
    CHECK(r.steps_done == 4);
    CHECK(std::find(log.begin(), log.end(), "6 patient bags, 6 with two or more images") != log.end());
    REQUIRE(epochs.size() == 2);
    // Each epoch's kNN accuracy is a brute-force kNN (k 20, T 0.1) over the features of that
    // epoch's checkpoint: 10 of the 12 training images, unaugmented, vote for the 9 val images.
    const auto bank = train::detail::unaugmented(images, 8, 1, 10), queries = train::detail::unaugmented(val, 8, 1, 10);
    REQUIRE(bank.data().size() == 10);
    REQUIRE(queries.data().size() == 9);
    for (std::int64_t epoch = 1; epoch <= 2; ++epoch) {
        CAPTURE(epoch);
        const auto& m = epochs[std::size_t(epoch - 1)];
        REQUIRE(m.count("knn_accuracy"));
        recipe_learner at_epoch(ctx, recipe_learner_config());
        train::load_checkpoint(dir.path / train::checkpoint_name(epoch), at_epoch);
        std::int64_t dim = 0;
        const auto fb = train::embed_all(at_epoch, bank, 4, 1, &dim), fq = train::embed_all(at_epoch, queries, 4, 1);
        const auto pred = testing::brute_force_knn(fb, bank.data().labels, fq, dim, 3, 20, 0.1);
        CHECK(m.at("knn_accuracy") == doctest::Approx(testing::share_right(pred, queries.data().labels)));
    }

    temp_dir other;
    auto bad = tiny_recipe(other.path, &log);
    bad.knn_every = 1;
    CHECK_THROWS_WITH_AS(train::pretrain(ctx, images, std::nullopt, bad), doctest::Contains("needs a val split"), value_error);
    bad = tiny_recipe(other.path, &log);
    bad.optimizer.name = "adam";
    CHECK_THROWS_WITH_AS(train::pretrain(ctx, images, std::nullopt, bad), doctest::Contains("lars, sgd or adamw"), value_error);
    bad = tiny_recipe(other.path, &log);
    bad.fit.batch = 13;
    CHECK_THROWS_WITH_AS(train::pretrain(ctx, images, std::nullopt, bad), doctest::Contains("larger than the 12 training images"),
                         value_error);
    // A model with fewer input channels than the images is refused, only when asked for.
    data::dataset rgb = images;
    rgb.decode = data::uint8_decoder(std::make_shared<std::vector<std::uint8_t>>(12 * 3 * 64, std::uint8_t(7)), 8, 8, 3);
    bad = tiny_recipe(other.path, &log);
    bad.model["channels"] = "1";
    CHECK_THROWS_WITH_AS(train::pretrain(ctx, rgb, std::nullopt, bad), doctest::Contains("which have 3 channels"), value_error);
}

TEST_CASE("finetune recipe: a label fraction, validation, best selection, and evaluate_checkpoint agrees with validation") {
    context<reference> ctx;
    const auto pool = tiny_images(), val = tiny_images(9);
    temp_dir pre, ft, probe;
    std::vector<std::string> log;
    train::pretrain(ctx, pool, std::nullopt, tiny_recipe(pre.path, &log));

    train::finetune_recipe r;
    r.init = pre.path;  // a run directory: its latest checkpoint, and its model and image size
    r.label_fraction = 0.5;
    r.val_every = 1;
    r.select_best = true;
    r.seed = 2;
    r.fit.epochs = 3;
    r.fit.batch = 2;
    r.fit.run_dir = ft.path;
    r.fit.keep_last = 5;
    r.log = [&](const std::string& line) { log.push_back(line); };
    std::vector<std::map<std::string, double>> epochs;
    const auto f = train::finetune(ctx, pool, val, r, epoch_log{&epochs});
    CHECK(f.labelled == 6);
    std::vector<std::int64_t> ids;
    std::ifstream in(ft.path / "label_ids.txt");
    for (std::string line; std::getline(in, line);)
        if (line[0] != '#') ids.push_back(std::stoll(line));
    CHECK(ids == data::label_fraction(pool, 0.5, 2));
    REQUIRE(epochs.size() == 3);
    std::size_t best = 0;
    for (std::size_t e = 1; e < epochs.size(); ++e)
        if (epochs[e].at("val_auc") > epochs[best].at("val_auc")) best = e;
    CHECK(f.selected == ft.path / train::checkpoint_name(std::int64_t(best + 1)));
    CHECK(train::named_checkpoint(ft.path, "selected") == f.selected);
    for (std::size_t e = 0; e < epochs.size(); ++e) {  // what validation saw is what evaluate reports
        const auto j = train::evaluate_checkpoint(ctx, ft.path / train::checkpoint_name(std::int64_t(e + 1)), val);
        CHECK(j.at("accuracy").get<double>() == doctest::Approx(epochs[e].at("val_accuracy")).epsilon(1e-12));
        CHECK(j.at("auc_macro").get<double>() == doctest::Approx(epochs[e].at("val_auc")).epsilon(1e-12));
        CHECK(j.at("n").get<std::int64_t>() == 9);
    }

    r.fit.run_dir = probe.path;
    r.linear_probe = true;
    r.select_best = false;
    r.val_every = 0;
    const auto p = train::finetune(ctx, pool, std::nullopt, r);
    CHECK(p.selected == p.last_checkpoint);
    CHECK(std::find_if(log.begin(), log.end(), [](const std::string& s) { return s.find("linear probe on 6") == 0; }) != log.end());
    // The probe's backbone is the pretrained one, untouched: embed_checkpoint of either file
    // gives the same features, and every one of the pretrained model's tensors is there.
    const auto from_init = train::embed_checkpoint(ctx, pre.path, val);
    train::evaluate_options small;
    small.batch = 3;
    small.workers = 1;
    const auto from_probe = train::embed_checkpoint(ctx, p.selected, val, small);
    CHECK(from_init.file == train::weights_file(pre.path));
    CHECK(from_init.dim == 32);  // tiny_recipe: resnet18, base 4 -> 8 x 4 features
    CHECK(from_init.image_size == 8);
    REQUIRE(from_init.features.size() == std::size_t(9 * from_init.dim));
    CHECK(from_probe.features == from_init.features);
    CHECK(std::any_of(from_init.features.begin(), from_init.features.end(), [](float v) { return v != 0.0f; }));

    // Without init: a probe of a random-init backbone, the baseline a pretrained probe beats.
    r.init.clear();
    r.fit.run_dir = probe.path / "random";
    const auto b = train::finetune(ctx, pool, std::nullopt, r);
    CHECK(std::find_if(log.begin(), log.end(), [](const std::string& s) { return s.find("random-init backbone") != std::string::npos; }) !=
          log.end());
    const auto random = train::embed_checkpoint(ctx, b.selected, val);
    CHECK(random.features != from_init.features);
    CHECK_THROWS_WITH_AS(train::embed_checkpoint(ctx, probe.path / "nowhere.safetensors", val), doctest::Contains("nowhere"), error);
}
