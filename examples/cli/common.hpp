#pragma once
// Shared pieces of the `micle` trainer: option parsing and the glue from options to the
// library (data::open_split, train::fit and its callbacks). Uses only micle's public headers.
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

#include <micle/micle.hpp>  // with micle::data: the readers too

#include <nlohmann/json.hpp>

#include "micle/data/inspect.hpp"
#include "micle/data/open.hpp"
#include "micle/train/evaluation.hpp"

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

/// How --data is read: --max-image-pixels.
inline data::open_options open_options_from(const options& o) {
    data::open_options opt;
    opt.read.limits.max_pixels = o.integer("max-image-pixels", opt.read.limits.max_pixels);
    if (opt.read.limits.max_pixels < 0) throw usage_error("--max-image-pixels must be >= 0 (0: no limit)");
    return opt;
}

/// Split `split` of --data (data::open_split).
inline data::dataset load_split(const options& o, const std::string& split) {
    const auto opt = open_options_from(o);
    try {
        return data::open_split(o.required("data"), split, opt);
    } catch (const value_error& e) {  // a split or spec that cannot be: the user's mistake
        throw usage_error(e.what());
    }
}

/// The backbone: --arch, --width, --stem, --base-channels, --channels over `meta` (a
/// checkpoint's) over the defaults (resnet18, the data's channels).
inline models::resnet_config backbone_from(const options& o, std::map<std::string, std::string> meta = {},
                                           std::int64_t default_channels = 1) {
    models::resnet_config defaults;
    defaults.depth = 18;
    defaults.in_channels = default_channels;
    for (const char* k : {"arch", "width", "stem", "base-channels", "channels"})
        if (o.has(k)) meta[k] = o.str(k);
    try {
        return models::resnet_from_metadata(meta, defaults);
    } catch (const value_error& e) {
        throw usage_error(e.what());
    }
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
/// fewer channels than the data, asked for explicitly, is refused with a clear message.
inline std::int64_t data_channels(const data::dataset& d, const options& o) {
    const std::int64_t c = d.load(0).channels;
    if (o.has("channels") && o.integer("channels", c) < c)
        throw usage_error(micle::detail::cat("--channels ", o.str("channels"), ": the images of ", d.source, " have ", c,
                                             " channels; a model reads them with --channels ", c, " (the default)"));
    return c;
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
    const auto file = train::weights_file(o.str("init"));
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

/// Forwards the validating hooks to a callback that may be absent.
template <class C>
struct maybe {
    std::optional<C>& c;
    void on_validate(train::epoch_info& e) {
        if (c) c->on_validate(e);
    }
};

/// fit with the trainer's callbacks: `extra` (a validation or kNN monitor, when given),
/// progress, metrics.jsonl and --stop-after.
template <class Learner, class Source, class Extra>
train::fit_result run_fit(const options& o, Learner& learner, const Source& source, const train::fit_options& fo,
                          std::optional<Extra>& extra) {
    return train::fit(learner, source, fo, maybe<Extra>{extra}, train::progress(), train::jsonl(fo.run_dir / "metrics.jsonl"),
                      train::stop_after_epoch{o.integer("stop-after", fo.epochs)});
}

/// Split `split` of --data without augmentation, for validation or a kNN monitor, or a
/// usage error naming `flag` when the data has no such split; at most `limit` images.
inline data::labeled_images eval_split(const options& o, const std::string& split, const char* flag, std::int64_t size,
                                       std::int64_t channels, std::int64_t limit = 0) {
    data::dataset d;
    try {
        d = load_split(o, split);
    } catch (const usage_error& e) {
        throw usage_error(std::string(flag) + " needs a " + split + " split: " + e.what());
    }
    if (limit > 0) d = data::random_subset(d, limit, 0x6b6e6eull);
    return data::labeled_images(std::move(d), data::augment_config::eval(size), channels, 0, false);
}

}  // namespace micle::cli
