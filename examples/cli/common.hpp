#pragma once
// Shared pieces of the `micle` trainer: option parsing, the DATA SPEC, run directories,
// logging and the progress line. Uses only micle's public headers.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <micle/micle.hpp>

#include <nlohmann/json.hpp>

#include "micle/data/csv.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/labeled.hpp"
#include "micle/data/npz.hpp"
#include "micle/data/split.hpp"
#include "micle/models/resnet.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/optim/schedule.hpp"
#include "micle/train/callbacks.hpp"
#include "micle/train/checkpoint.hpp"
#include "micle/train/fit.hpp"

namespace micle::cli {

namespace fs = std::filesystem;
// The backend the trainer runs on: the build's default (CMake MICLE_DEFAULT_BACKEND), or
// MICLE_CLI_BACKEND for a trainer built for another one (micle-gpu: micle::cudnn).
#ifdef MICLE_CLI_BACKEND
using backend = MICLE_CLI_BACKEND;
#else
using backend = micle::default_backend;
#endif

/// What the trainer runs on, for the log: the backend, and the device where it has one.
template <class B>
std::string describe(const context<B>& ctx) {
    if constexpr (requires { ctx.description(); })
        return ctx.description();
    else
        return std::string(B::name);
}

/// A user mistake on the command line: printed with the subcommand's usage, exit code 2.
class usage_error : public error {
public:
    using error::error;
};

/// --key value options and --flag switches, checked against what a subcommand accepts.
class options {
public:
    options(int argc, char** argv, int first, const std::set<std::string>& valued, const std::set<std::string>& flags) {
        for (int i = first; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "--help" || a == "-h") {
                help_ = true;
                continue;
            }
            if (a.rfind("--", 0) != 0) throw usage_error("unexpected argument '" + a + "'");
            a = a.substr(2);
            if (flags.count(a)) {
                values_[a] = "1";
            } else if (valued.count(a)) {
                if (i + 1 >= argc) throw usage_error("--" + a + " needs a value");
                values_[a] = argv[++i];
            } else {
                throw usage_error("unknown option --" + a);
            }
        }
    }
    bool help() const { return help_; }
    bool has(const std::string& k) const { return values_.count(k) != 0; }
    std::string str(const std::string& k, const std::string& fallback = "") const {
        const auto it = values_.find(k);
        return it == values_.end() ? fallback : it->second;
    }
    std::string required(const std::string& k) const {
        if (!has(k)) throw usage_error("--" + k + " is required");
        return str(k);
    }
    long long integer(const std::string& k, long long fallback) const {
        if (!has(k)) return fallback;
        try {
            std::size_t used = 0;
            const long long v = std::stoll(str(k), &used);
            if (used != str(k).size()) throw std::invalid_argument("");
            return v;
        } catch (const std::exception&) {
            throw usage_error("--" + k + " expects an integer, got '" + str(k) + "'");
        }
    }
    double number(const std::string& k, double fallback) const {
        if (!has(k)) return fallback;
        try {
            std::size_t used = 0;
            const double v = std::stod(str(k), &used);
            if (used != str(k).size()) throw std::invalid_argument("");
            return v;
        } catch (const std::exception&) {
            throw usage_error("--" + k + " expects a number, got '" + str(k) + "'");
        }
    }

private:
    std::map<std::string, std::string> values_;
    bool help_ = false;
};

/// The backend options every training command takes (after its own).
inline const std::set<std::string> backend_options{"device", "precision"};
/// The options of the commands that read a DATA SPEC, besides --data itself.
inline const std::set<std::string> data_options{"max-image-pixels"};
inline std::set<std::string> with_backend_options(std::set<std::string> valued) {
    valued.insert(backend_options.begin(), backend_options.end());
    if (valued.count("data")) valued.insert(data_options.begin(), data_options.end());
    return valued;
}
inline constexpr const char* backend_usage =
    "  --device N             the CUDA device (micle-gpu; 0)\n"
    "  --precision tf32|fp32|bf16   micle-gpu: fp32 data with TF32 tensor cores (default), strict fp32, or bf16\n"
    "                         mixed precision (bf16 activations, fp32 weights); the CPU trainer computes in fp32\n";

/// The context of the trainer's backend, from --device and --precision.
inline context<backend> make_context(const options& o) {
    const std::string precision = o.str("precision", "tf32");
    if (precision != "tf32" && precision != "fp32" && precision != "bf16")
        throw usage_error("--precision must be tf32, fp32 or bf16, got '" + precision + "'");
#if MICLE_HAS_CUDNN && defined(__CUDACC__)
    if constexpr (std::is_same_v<backend, cudnn>) {
        cudnn_options c;
        c.device = static_cast<int>(o.integer("device", 0));
        c.allow_tf32 = precision != "fp32";
        c.bf16 = precision == "bf16";
        return context<backend>(c);
    }
#endif
    if (o.has("device") || precision == "bf16")
        throw usage_error("--device and --precision bf16 are for the GPU trainer (micle-gpu); this one runs on " +
                          std::string(backend::name));
    return context<backend>();
}


inline constexpr const char* data_usage =
    "  --max-image-pixels N   refuse decoded images over N pixels (89478485, Pillow's limit; 0: no limit)\n";

/// The per-image limits from --max-image-pixels.
inline data::decode_limits decode_limits_from(const options& o) {
    data::decode_limits lim;
    lim.max_pixels = o.integer("max-image-pixels", lim.max_pixels);
    if (lim.max_pixels < 0) throw usage_error("--max-image-pixels must be >= 0 (0: no limit)");
    return lim;
}

/// The dataset of a DATA SPEC (--data) and split: a CSV manifest (its split column, or a
/// seeded 70/10/20 patient-level split), a MedMNIST .npz (its arrays), an IDX directory
/// (train/test as stored; "fashion-mnist" names Debian's copy).
inline data::dataset load_split(const options& o, const std::string& split, std::uint64_t split_seed = 0) {
    const std::string spec = o.required("data");
    const auto limits = decode_limits_from(o);
    if (split != "train" && split != "val" && split != "test")
        throw usage_error("--split must be train, val or test, not '" + split + "'");
    const fs::path p = spec == "fashion-mnist" ? fs::path(data::fashion_mnist_dir) : fs::path(spec);
    if (fs::is_directory(p)) {
        if (split == "val")
            throw usage_error("the IDX dataset " + p.string() + " has train and test splits only (use --split test)");
        return data::read_idx_dataset(p, split, limits);
    }
    const std::string ext = p.extension().string();
    if (ext == ".npz") return data::read_medmnist(p, split, limits);
    if (ext == ".csv") {
        data::read_options read;
        read.limits = limits;
        const auto all = data::read_csv_manifest(p, read);
        std::vector<std::int64_t> idx;
        if (!all.splits.empty()) {
            for (std::int64_t i = 0; i < all.size(); ++i)
                if (all.splits[std::size_t(i)] == split) idx.push_back(i);
        } else {
            const auto parts = data::patient_split(all, {0.7, 0.1, 0.2}, split_seed);
            idx = split == "train" ? parts.train : (split == "val" ? parts.val : parts.test);
        }
        if (idx.empty()) throw data::data_error("manifest " + p.string() + " has no " + split + " images");
        return all.subset(idx);
    }
    throw usage_error("--data " + spec + ": expected a .csv manifest, a .npz file or an IDX directory");
}

inline std::vector<std::int64_t> shuffled_indices(std::int64_t n, std::uint64_t seed) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    rng gen(derive_seed(seed, {0x737562736574ull}));
    std::shuffle(order.begin(), order.end(), gen);
    return order;
}

inline std::string json_number(double v) {
    if (std::isnan(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

/// The backbone options shared by the subcommands, as saved in checkpoint metadata.
inline models::resnet_config backbone_from(const options& o, const std::map<std::string, std::string>& meta = {},
                                           std::int64_t default_channels = 1) {
    auto pick = [&](const std::string& key, const std::string& fallback) {
        if (o.has(key)) return o.str(key);
        const auto it = meta.find(key);
        return it == meta.end() ? fallback : it->second;
    };
    models::resnet_config c;
    const std::string arch = pick("arch", "resnet18");
    if (arch.rfind("resnet", 0) != 0) throw usage_error("--arch must be resnet18/34/50/101/152, not '" + arch + "'");
    try {
        c.depth = std::stoi(arch.substr(6));
        c.width = std::stoi(pick("width", "1"));
        c.base_channels = std::stoll(pick("base-channels", "64"));
        c.in_channels = std::stoll(pick("channels", std::to_string(default_channels)));
    } catch (const std::exception&) {
        throw usage_error("bad architecture options (arch " + arch + ")");
    }
    const std::string stem = pick("stem", "imagenet");
    if (stem != "imagenet" && stem != "small") throw usage_error("--stem must be imagenet or small, not '" + stem + "'");
    c.stem = stem == "small" ? models::stem_kind::small : models::stem_kind::imagenet;
    c.validate();
    return c;
}

inline std::map<std::string, std::string> backbone_meta(const models::resnet_config& c, std::int64_t image_size) {
    return {{"arch", "resnet" + std::to_string(c.depth)},
            {"width", std::to_string(c.width)},
            {"base-channels", std::to_string(c.base_channels)},
            {"channels", std::to_string(c.in_channels)},
            {"stem", c.stem == models::stem_kind::small ? "small" : "imagenet"},
            {"image-size", std::to_string(image_size)}};
}

/// Metadata of a checkpoint given to --init/--model: a run directory (its latest
/// checkpoint's model) or a .safetensors file.
/// The weights a --model or --init SPEC names: a .safetensors file, or a run directory's
/// `selected` checkpoint (finetune --select) or else its `latest`.
inline fs::path model_file(const std::string& spec) {
    const fs::path p(spec);
    if (fs::is_directory(p))
        return (fs::exists(p / "selected") ? train::named_checkpoint(p, "selected") : train::latest_checkpoint(p)) /
               "model.safetensors";
    return p;
}

/// The options every training command takes, besides its own `extra` ones.
inline std::set<std::string> with_training_options(std::set<std::string> extra) {
    for (const char* k : {"data", "out", "init", "arch", "width", "stem", "base-channels", "channels", "image-size", "epochs",
                          "batch-size", "optimizer", "lr", "weight-decay", "warmup-epochs", "max-samples", "workers", "seed",
                          "stop-after", "checkpoint-every", "keep-last"})
        extra.insert(k);
    return with_backend_options(std::move(extra));
}

/// The input channels of the data (its first image's): the model's default. A model with
/// fewer channels than the data, asked for explicitly, is refused here with a clear message
/// (a 1-channel model reads 3-channel images only after a conversion the user chooses).
inline std::int64_t data_channels(const data::dataset& d, const options& o) {
    const std::int64_t c = d.load(0).channels;
    if (o.has("channels") && o.integer("channels", c) < c)
        throw usage_error(micle::detail::cat("--channels ", o.str("channels"), ": the images of ", d.source, " have ", c,
                                             " channels; a model reads them with --channels ", c, " (the default)"));
    return c;
}

/// A seeded random subset of --max-samples images (sorted, so the order stays the data's).
inline data::dataset subsample(data::dataset d, const options& o, std::uint64_t seed) {
    if (!o.has("max-samples") || o.integer("max-samples", 0) >= d.size()) return d;
    auto order = shuffled_indices(d.size(), seed);
    order.resize(std::size_t(std::max<long long>(1, o.integer("max-samples", 0))));
    std::sort(order.begin(), order.end());
    return d.subset(order);
}

/// The library trainer's options from the command line; `lr` is the peak rate.
inline train::fit_options fit_options_from(const options& o, const fs::path& out, float lr) {
    train::fit_options f;
    f.epochs = o.integer("epochs", 10);
    f.batch = o.integer("batch-size", 64);
    f.lr = lr;
    f.run_dir = out;
    f.resume = o.has("resume");
    f.checkpoint_every = o.integer("checkpoint-every", 0);
    f.keep_last = int(o.integer("keep-last", 1));
    f.workers = int(o.integer("workers", 2));
    if (f.epochs < 1 || f.batch < 1 || f.workers < 1 || f.keep_last < 1 || f.checkpoint_every < 0)
        throw usage_error("need --epochs >= 1, --batch-size >= 1, --workers >= 1, --keep-last >= 1, --checkpoint-every >= 0");
    return f;
}

/// Loads --init into `state` (non-strictly, reporting what matched) unless the run resumes
/// from its own checkpoint. Returns how many tensors were loaded.
template <class B>
std::size_t init_unless_resuming(const options& o, const fs::path& out, context<B>& ctx, nn::state_list<B> state) {
    if (!o.has("init") || (o.has("resume") && fs::exists(out / "latest"))) return 0;
    const auto file = model_file(o.str("init"));
    const auto report = train::load_weights(file, ctx, state, {false, true});
    std::fprintf(stderr, "micle: --init %s: %zu tensors loaded, %zu missing, %zu not used\n", file.c_str(), report.loaded.size(),
                 report.missing.size(), report.unexpected.size());
    for (const auto& note : report.notes) std::fprintf(stderr, "micle: %s\n", note.c_str());
    return report.loaded.size();
}

/// <out>/config.json, written with nlohmann::json (paths and names escaped).
inline void write_config(const fs::path& out, const nlohmann::json& j) {
    fs::create_directories(out);
    std::ofstream f(out / "config.json");
    f << j.dump(2) << '\n';
    if (!f) throw data::data_error("cannot write " + (out / "config.json").string());
}

/// Forwards every hook to a callback that may be absent.
template <class C>
struct maybe {
    std::optional<C>& c;
    void on_step(train::step_info& s) {
        if (c) train::detail::on_step(*c, s);
    }
    void on_validate(train::epoch_info& e) {
        if (c) train::detail::on_validate(*c, e);
    }
};

/// fit with the trainer's callbacks: progress, metrics.jsonl, --stop-after, and `extra`
/// (a validation or kNN monitor, when given).
template <class Learner, class Source, class Extra>
train::fit_result run_fit(const options& o, Learner& learner, const Source& source, const train::fit_options& fo,
                          std::optional<Extra>& extra) {
    return train::fit(learner, source, fo, maybe<Extra>{extra}, train::progress(), train::jsonl(fo.run_dir / "metrics.jsonl"),
                      train::stop_after_epoch{o.integer("stop-after", fo.epochs)});
}

/// The kNN monitor of --knn-every: --knn-samples images of the train split vote for as
/// many of the val split, both unaugmented.
template <class Learner>
train::knn_monitor<Learner> knn_monitor_for(const options& o, Learner& learner, const data::dataset& train_split,
                                            std::int64_t size, std::int64_t channels, std::uint64_t seed) {
    const auto every = o.integer("knn-every", 1), samples = o.integer("knn-samples", 2000);
    if (every < 1 || samples < 1) throw usage_error("need --knn-every >= 1 and --knn-samples >= 1");
    const auto limit = [&](data::dataset d) {
        if (samples >= d.size()) return d;
        auto order = shuffled_indices(d.size(), seed ^ 0x6b6e6eull);
        order.resize(std::size_t(samples));
        std::sort(order.begin(), order.end());
        return d.subset(order);
    };
    const auto eval = data::augment_config::eval(size);
    data::dataset val;
    try {
        val = load_split(o, "val");
    } catch (const usage_error& e) {
        throw usage_error(std::string("--knn-every needs a val split: ") + e.what());
    }
    return train::knn_monitor<Learner>(learner, data::labeled_images(limit(train_split), eval, channels, seed, false),
                                       data::labeled_images(limit(std::move(val)), eval, channels, seed, false), every);
}

}  // namespace micle::cli
