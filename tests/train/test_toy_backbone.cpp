// A backbone that micle does not ship, defined in this file alone: a 2-layer CNN that
// satisfies the Backbone concept, with its backbone_traits. It pretrains (SimCLR and MICLe),
// fine-tunes from its pretrained weights, is evaluated and embedded through the library's
// recipes and evaluation, with no change anywhere else: the proof that adding a backbone
// touches the backbone's own files only (docs/contributing.md).
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "run_fixtures.hpp"
#include "micle/models/backbone.hpp"
#include "micle/train/evaluation.hpp"
#include "micle/train/recipes.hpp"
#include "micle/train/safetensors.hpp"

using namespace micle;
namespace fs = std::filesystem;

namespace toy {

struct config {
    std::int64_t in_channels = 1, width = 6;
};

/// conv 3x3 (C -> width) + batch norm + ReLU, conv 3x3 stride 2 (width -> 2 width) + batch
/// norm + ReLU, global average pooling: [N, C, H, W] -> [N, 2 width].
template <class B>
class cnn {
public:
    using config = toy::config;
    cnn(context<B>& ctx, const config& cfg, std::uint64_t seed) : cfg_(cfg) {
        rng gen(seed);
        conv1_ = std::make_unique<nn::conv2d<B>>(ctx, "conv1", cfg.in_channels, cfg.width, 3, 1, 1, false, gen);
        bn1_ = std::make_unique<nn::batch_norm<B>>(ctx, "bn1", cfg.width, true);
        conv2_ = std::make_unique<nn::conv2d<B>>(ctx, "conv2", cfg.width, 2 * cfg.width, 3, 2, 1, false, gen);
        bn2_ = std::make_unique<nn::batch_norm<B>>(ctx, "bn2", 2 * cfg.width, true);
    }
    std::int64_t output_dim() const { return 2 * cfg_.width; }
    const tensor<B>& forward(context<B>& ctx, const tensor<B>& x, bool training) {
        input_ = &x;
        const auto& h = bn1_->forward(ctx, conv1_->forward(ctx, x), training);
        const auto& g = bn2_->forward(ctx, conv2_->forward(ctx, h), training);
        gap_.forward(ctx, g, features_);
        return features_;
    }
    void backward(context<B>& ctx, const tensor<B>& dout) {
        gap_.backward(ctx, dout, dgap_);
        const auto& d2 = bn2_->backward(ctx, conv2_->output(), dgap_);
        const auto& dh = conv2_->backward(ctx, bn1_->output(), d2);
        const auto& d1 = bn1_->backward(ctx, conv1_->output(), dh);
        conv1_->backward(ctx, *input_, d1, false);
    }
    nn::state_list<B> state() {
        auto s = conv1_->state();
        s.append(bn1_->state());
        s.append(conv2_->state());
        s.append(bn2_->state());
        return s;
    }

private:
    config cfg_;
    std::unique_ptr<nn::conv2d<B>> conv1_, conv2_;
    std::unique_ptr<nn::batch_norm<B>> bn1_, bn2_;
    ops::global_avg_pool<B> gap_;
    const tensor<B>* input_ = nullptr;
    tensor<B> features_, dgap_;
};

}  // namespace toy

template <>
struct micle::models::backbone_traits<toy::cnn> {
    using config = toy::config;
    static config defaults(std::int64_t in_channels) { return {in_channels, 6}; }
    static config from_metadata(const metadata& m, config c) {
        if (const auto it = m.find("arch"); it != m.end())
            check<value_error>(it->second == "toy-cnn", "toy: arch '", it->second, "' is not toy-cnn");
        if (const auto it = m.find("channels"); it != m.end()) c.in_channels = std::stoll(it->second);
        if (const auto it = m.find("width"); it != m.end()) c.width = std::stoll(it->second);
        return c;
    }
    static metadata to_metadata(const config& c) {
        return {{"arch", "toy-cnn"}, {"channels", std::to_string(c.in_channels)}, {"width", std::to_string(c.width)}};
    }
    static std::int64_t in_channels(const config& c) { return c.in_channels; }
};

static_assert(Backbone<toy::cnn<reference>, reference>);
static_assert(models::described_backbone<toy::cnn>);

TEST_CASE("a backbone defined outside the library pretrains, fine-tunes, evaluates and embeds through the recipes") {
    context<reference> ctx;
    auto pool = testing::tiny_images(12);
    for (std::size_t i = 0; i < pool.patients.size(); ++i) pool.patients[i] = std::int64_t(i / 2);  // bags of 2 for MICLe
    const auto test = testing::tiny_images(9);
    testing::temp_dir simclr, micle_run, ft;
    std::vector<std::string> log;

    train::pretrain_recipe p;
    p.image_size = 8;
    p.model = {{"width", "4"}};  // over the traits' defaults (width 6, the data's 1 channel)
    p.fit.epochs = 2;
    p.fit.batch = 4;
    p.fit.run_dir = simclr.path;
    p.log = [&](const std::string& line) { log.push_back(line); };
    const auto a = train::pretrain<toy::cnn>(ctx, pool, std::nullopt, p);
    CHECK(a.steps_done == 6);
    p.pairs = "micle";
    p.fit.run_dir = micle_run.path;
    const auto b = train::pretrain<toy::cnn>(ctx, pool, std::nullopt, p);
    CHECK(b.steps_done == 2);  // 6 patient bags of 2, batches of 4 bags
    const auto meta = safetensors::reader(train::weights_file(micle_run.path)).metadata();
    CHECK(meta.at("arch") == "toy-cnn");
    CHECK(meta.at("width") == "4");
    CHECK(meta.at("channels") == "1");
    CHECK(meta.at("image-size") == "8");
    CHECK(meta.at("method") == "micle");
    const safetensors::reader weights(train::weights_file(micle_run.path));
    CHECK(weights.contains("conv2.weight"));
    CHECK(weights.contains("bn2.running_var"));

    train::finetune_recipe f;
    f.init = micle_run.path;  // the model (width 4) and image size come from the checkpoint
    f.fit.epochs = 2;
    f.fit.batch = 4;
    f.fit.run_dir = ft.path;
    f.log = p.log;
    const auto r = train::finetune<toy::cnn>(ctx, pool, std::nullopt, f);
    CHECK(r.labelled == 12);
    // Every backbone tensor of the pretrained file (2 convolutions, 2 batch norms) was loaded.
    const auto init = std::find_if(log.begin(), log.end(), [](const std::string& s) { return s.rfind("init ", 0) == 0; });
    REQUIRE(init != log.end());
    CHECK(init->find(": 12 tensors loaded, 0 missing") != std::string::npos);
    const auto j = train::evaluate_checkpoint<toy::cnn>(ctx, ft.path, test);
    CHECK(j.at("n").get<std::int64_t>() == 9);
    CHECK(j.at("auc_per_class").size() == 3);
    const double acc = j.at("accuracy").get<double>();
    CHECK((acc >= 0.0 && acc <= 1.0));
    const auto e = train::embed_checkpoint<toy::cnn>(ctx, micle_run.path, test);
    CHECK(e.dim == 8);
    CHECK(e.features.size() == 9 * 8);
    // The ResNet default refuses a toy checkpoint by its arch, rather than misreading it.
    CHECK_THROWS_WITH_AS(train::evaluate_checkpoint(ctx, ft.path, test), doctest::Contains("resnet: arch must be"), value_error);
}
