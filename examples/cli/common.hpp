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

#include "micle/data/csv.hpp"
#include "micle/data/fashion_mnist.hpp"
#include "micle/data/loader.hpp"
#include "micle/data/npz.hpp"
#include "micle/data/split.hpp"
#include "micle/models/resnet.hpp"
#include "micle/train/checkpoint.hpp"

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

/// The batches of a prefetch loader, each also handed to the backend one step ahead
/// (micle::upload_queue): while the caller computes with one batch, the next one is being
/// copied (on the GPU backend, on a copy stream of its own).
template <class Batch>
class device_batches {
public:
    device_batches(context<backend>& ctx, data::prefetch_loader<Batch>& loader) : ctx_(ctx), loader_(loader) {
        advance();
    }
    /// The next batch (its host data) and its images on the backend, valid until the
    /// call after next; false at the end.
    bool next(Batch& batch, const tensor<backend>*& images) {
        if (!pending_) return false;
        batch = std::move(*pending_);
        images = &uploads_.next(ctx_);
        advance();
        return true;
    }

private:
    void advance() {
        pending_ = loader_.next();
        if (pending_) uploads_.stage(ctx_, pending_->dims, pending_->pixels);
    }
    context<backend>& ctx_;
    data::prefetch_loader<Batch>& loader_;
    std::optional<Batch> pending_;
    upload_queue<backend> uploads_;
};

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

/// Appends JSON lines to <dir>/metrics.jsonl.
class jsonl {
public:
    explicit jsonl(const fs::path& file) : out_(file, std::ios::app) {
        if (!out_) throw data::data_error("cannot write " + file.string());
    }
    void write(const std::string& line) {
        out_ << line << '\n';
        out_.flush();
    }

private:
    std::ofstream out_;
};

/// A progress line on a terminal (rewritten in place), plain log lines otherwise.
class progress {
public:
    progress() : tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}
    void update(std::int64_t epoch, std::int64_t epochs, std::int64_t step, std::int64_t steps, double loss, double lr,
                double images_per_s, std::int64_t done, std::int64_t total) {
        const double elapsed = seconds();
        const double eta = done > 0 ? elapsed * double(total - done) / double(done) : 0.0;
        if (tty_) {
            std::fprintf(stderr, "\r\033[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %.0fs",
                         (long long)epoch + 1, (long long)epochs, (long long)step + 1, (long long)steps, loss, lr,
                         images_per_s, eta);
        } else if (step + 1 == steps || (step % 20) == 0) {
            std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %.0fs\n", (long long)epoch + 1,
                         (long long)epochs, (long long)step + 1, (long long)steps, loss, lr, images_per_s, eta);
        }
    }
    void end_line() {
        if (tty_) std::fprintf(stderr, "\n");
    }
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
    bool tty_;
    std::chrono::steady_clock::time_point start_;
};

/// One training step's record: a metrics.jsonl line and the progress display.
inline void record_step(jsonl& log, progress& bar, std::int64_t epoch, std::int64_t epochs, std::int64_t s,
                        std::int64_t steps, std::int64_t step, double loss, double lr, double images_per_s,
                        std::int64_t done, std::int64_t total) {
    log.write("{\"epoch\": " + std::to_string(epoch) + ", \"step\": " + std::to_string(step) + ", \"loss\": " +
              json_number(loss) + ", \"lr\": " + json_number(lr) + ", \"images_per_s\": " + json_number(images_per_s) +
              "}");
    bar.update(epoch, epochs, s, steps, loss, lr, images_per_s, done, total);
}

/// A non-finite loss: says so, names the last good checkpoint (which stays), exit code 3.
inline int stop_training(const char* command, progress& bar, const std::exception& e, const fs::path& out) {
    bar.end_line();
    std::fprintf(stderr, "micle %s: stopping: %s\nmicle %s: the last good checkpoint is %s\n", command, e.what(), command,
                 fs::exists(out / "latest") ? train::latest_checkpoint(out).c_str() : "(none yet)");
    return 3;
}

/// The backbone options shared by the subcommands, as saved in checkpoint metadata.
inline models::resnet_config backbone_from(const options& o, const std::map<std::string, std::string>& meta = {}) {
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
        c.in_channels = std::stoll(pick("channels", "1"));
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
inline fs::path model_file(const std::string& spec) {
    const fs::path p(spec);
    if (fs::is_directory(p)) return train::latest_checkpoint(p) / "model.safetensors";
    return p;
}

}  // namespace micle::cli
