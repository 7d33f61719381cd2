#pragma once
// Shared pieces of the `micle` trainer: option parsing and the glue from options to the
// library (data::open_split, train::fit and its callbacks). Uses only micle's public headers.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <tuple>
#include <vector>

#include <micle/micle.hpp>  // with micle::data: the readers too

#include "micle/data/inspect.hpp"
#include "micle/dist/launch.hpp"  // local_rank: the GPU a rank drives
#include "micle/data/open.hpp"
#include "micle/train/evaluation.hpp"
#include "micle/train/recipes.hpp"
#if MICLE_HAS_NCCL && defined(__CUDACC__)
#include "micle/dist/nccl.hpp"
#endif

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

/// The ranks of this run (main sets them up): MPI under mpirun or srun with several ranks,
/// else this process alone.
dist::communicator& world();
/// A user mistake on the command line: printed with the subcommand's usage, exit code 2.
class usage_error : public error {
public:
    using error::error;
};

/// For the commands that run in one process: a usage error under several ranks.
inline void one_process(const char* command) {
    if (world().size() > 1)
        throw usage_error(std::string(command) +
                          " runs in one process: start it without mpirun/srun (pretrain and finetune run data-parallel)");
}

/// The ranks a training command runs data-parallel over: under mpirun/srun, MPI between
/// CPU ranks, and NCCL between the GPUs of micle-gpu's ranks (bootstrapped over MPI).
class training_ranks {
public:
    template <class Ctx>
    explicit training_ranks([[maybe_unused]] Ctx& ctx) {
#if MICLE_HAS_NCCL && defined(__CUDACC__)
        if constexpr (std::is_same_v<Ctx, context<cudnn>>)
            if (world().size() > 1) nccl_.emplace(world(), ctx);
#endif
    }
    dist::communicator& comm() {
#if MICLE_HAS_NCCL && defined(__CUDACC__)
        if (nccl_) return *nccl_;
#endif
        return world();
    }
    /// ", MPI, rank r of R on H hosts" (or NCCL's) under several ranks, else nothing.
    std::string text() { return comm().size() > 1 ? ", " + comm().description() : std::string(); }

private:
#if MICLE_HAS_NCCL && defined(__CUDACC__)
    std::optional<dist::nccl_communicator> nccl_;
#endif
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
                all_[a].push_back(values_[a]);
            } else {
                throw usage_error("unknown option --" + a);
            }
        }
    }
    bool help() const { return help_; }
    bool has(const std::string& k) const { return values_.count(k) != 0; }
    /// Every value of an option given more than once, in order (str() is the last).
    std::vector<std::string> values(const std::string& k) const {
        const auto it = all_.find(k);
        return it == all_.end() ? std::vector<std::string>{} : it->second;
    }
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
    std::map<std::string, std::vector<std::string>> all_;
    bool help_ = false;
};

/// The backend options every training command takes (after its own).
inline const std::set<std::string> backend_options{"device", "precision", "conv-algorithm"};
/// The options of the commands that read a DATA SPEC, besides --data itself.
inline const std::set<std::string> data_options{"max-image-pixels", "labels", "uncertain", "missing", "views"};
inline std::set<std::string> with_backend_options(std::set<std::string> valued) {
    valued.insert(backend_options.begin(), backend_options.end());
    if (valued.count("data")) valued.insert(data_options.begin(), data_options.end());
    return valued;
}
inline constexpr const char* backend_usage =
    "  --device N             the CUDA device (micle-gpu; 0)\n"
    "  --precision auto|tf32|fp32|bf16   the faster mode for this machine (auto, the default): micle-gpu\n"
    "                         tf32; micle bf16 mixed precision on CPUs with AMX, fp32 elsewhere. micle-gpu: fp32\n"
    "                         data with TF32 tensor cores, strict fp32, or bf16 mixed precision (bf16 activations,\n"
    "                         fp32 weights); micle: fp32 (tf32 means fp32), or bf16 mixed precision, only on CPUs\n"
    "                         with AMX (refused on AVX512-BF16 without AMX, where it trains 2-3x slower than fp32)\n"
    "  --conv-algorithm auto|direct   micle: fp32 3x3 stride-1 convolutions over 32+ channels onto maps of 4x4\n"
    "                         and more run oneDNN's Winograd kernels on AVX-512 CPUs (auto, the default), or only its direct\n"
    "                         kernels everywhere (direct); micle-gpu refuses it (cuDNN picks its algorithms)\n";

/// The context of the trainer's backend, from --device, --precision and --conv-algorithm.
inline context<backend> make_context(const options& o) {
    std::string precision = o.str("precision", "auto");
    if (precision != "auto" && precision != "tf32" && precision != "fp32" && precision != "bf16")
        throw usage_error("--precision must be auto, tf32, fp32 or bf16, got '" + precision + "'");
    const std::string conv_algorithm = o.str("conv-algorithm", "auto");
    if (conv_algorithm != "auto" && conv_algorithm != "direct")
        throw usage_error("--conv-algorithm must be auto or direct, got '" + conv_algorithm + "'");
#if MICLE_HAS_CUDNN && defined(__CUDACC__)
    if constexpr (std::is_same_v<backend, cudnn>) {
        cudnn_options c;
        // Under mpirun with several ranks, one GPU per rank: the rank's index on its machine.
        const int devices = std::max(1, cudnn_detail::device_count());
        c.device = static_cast<int>(o.integer("device", world().size() > 1 ? dist::local_rank() % devices : 0));
        if (precision == "auto") precision = "tf32";
        c.allow_tf32 = precision != "fp32";
        c.bf16 = precision == "bf16";
        if (o.has("conv-algorithm"))
            throw usage_error("--conv-algorithm is for the CPU trainer (micle); cuDNN picks the GPU's algorithms");
        return context<backend>(c);
    }
#endif
    if (o.has("device"))
        throw usage_error("--device is for the GPU trainer (micle-gpu); this one runs on " + std::string(backend::name));
#if MICLE_HAS_ONEDNN
    if constexpr (std::is_same_v<backend, onednn>) {
        onednn_options c;
        const auto isa = dnnl::get_effective_cpu_isa();
        if (precision == "auto") precision = onednn_detail::bf16_pays(isa) ? "bf16" : "fp32";
        if (precision == "bf16" && onednn_detail::cpu_has_bf16(isa) && !onednn_detail::bf16_pays(isa))
            throw usage_error(micle::detail::cat(
                "--precision bf16: oneDNN runs ", onednn_detail::isa_name(isa),
                " kernels here, bf16 without AMX, where bf16 mixed precision trains 2-3x slower than fp32 (a ResNet-18 "
                "step measured at 0.38-0.52x the fp32 rate); use --precision auto or fp32"));
        c.bf16 = precision == "bf16";
        c.winograd = conv_algorithm == "auto";
        try {
            return context<backend>(c);
        } catch (const value_error& e) {  // bf16 on a CPU without bf16 kernels
            throw usage_error(std::string("--precision bf16: ") + e.what());
        }
    }
#endif
    if (precision == "auto") precision = "fp32";
    if (precision == "bf16")
        throw usage_error("--precision bf16 needs the oneDNN or the GPU backend; this trainer runs on " + std::string(backend::name));
    return context<backend>();
}


inline constexpr const char* data_usage =
    "  --max-image-pixels N   refuse decoded images over N pixels (89478485, Pillow's limit; 0: no limit)\n"
    "  chest X-ray specs (chexpert:, mimic-cxr:, nih:):\n"
    "  --labels chexpert5|all|A,B,...   the labels used (chexpert5 for CheXpert and MIMIC-CXR, all for NIH)\n"
    "  --uncertain ignore|ones|zeros    a -1.0 label: left out of loss and metrics (ignore), or positive, or negative\n"
    "  --missing ignore|zeros           a blank label: left out (ignore), or negative\n"
    "  --views frontal|lateral|all      the images read (all)\n";

/// How --data is read: --max-image-pixels, and for chest X-ray specs --labels, --uncertain,
/// --missing and --views.
inline data::open_options open_options_from(const options& o) {
    data::open_options opt;
    opt.read.limits.max_pixels = o.integer("max-image-pixels", opt.read.limits.max_pixels);
    if (opt.read.limits.max_pixels < 0) throw usage_error("--max-image-pixels must be >= 0 (0: no limit)");
    try {
        opt.labels.labels = o.str("labels");
        opt.labels.uncertain = data::parse_uncertain_policy(o.str("uncertain", "ignore"));
        opt.labels.missing_zeros = data::parse_missing_policy(o.str("missing", "ignore"));
        opt.views = data::parse_view_filter(o.str("views", "all"));
    } catch (const value_error& e) {
        throw usage_error(e.what());
    }
    if ((o.has("uncertain") || o.has("missing")) && !data::chest_source(o.required("data")))
        throw usage_error("--uncertain and --missing are for chest X-ray specs (chexpert:, mimic-cxr:, nih:)");
    return opt;
}

/// --data read whole once per command where the source is read whole and then split (the
/// chest X-ray specs: one pass over a label file of 200k+ rows and a look at every image),
/// so that the train, val and test splits and the leak check do not each read it again;
/// nullptr for the other sources, which open_split reads per split.
inline const data::dataset* whole_source(const options& o) {
    static std::map<std::string, std::unique_ptr<const data::dataset>> read;  // one command's --data
    const auto spec = o.required("data");
    if (!data::chest_source(spec)) return nullptr;
    auto& d = read[spec];
    if (!d) d = std::make_unique<const data::dataset>(data::open_all(spec, open_options_from(o)));
    return d.get();
}

/// Split `split` of --data (data::open_split).
inline data::dataset load_split(const options& o, const std::string& split) {
    const auto opt = open_options_from(o);
    try {
        if (const auto* all = whole_source(o)) return data::select_split(*all, split, opt);
        return data::open_split(o.required("data"), split, opt);
    } catch (const value_error& e) {  // a split or spec that cannot be: the user's mistake
        throw usage_error(e.what());
    }
}

/// What evaluate and compare share: --batch-size, --workers, --patient-level, and the patient
/// bootstrap's --bootstrap and --seed (which need --patient-level).
inline train::evaluate_options evaluate_options_from(const options& o) {
    train::evaluate_options opt;
    opt.batch = o.integer("batch-size", 128);
    opt.workers = int(o.integer("workers", 2));
    opt.patient_level = o.has("patient-level");
    opt.bootstrap = int(o.integer("bootstrap", 2000));
    opt.seed = std::uint64_t(o.integer("seed", 0));
    if (opt.batch < 1 || opt.workers < 1) throw usage_error("need --batch-size >= 1 and --workers >= 1");
    if (opt.bootstrap < 1) throw usage_error("--bootstrap needs at least 1 replicate");
    if (!opt.patient_level && (o.has("bootstrap") || o.has("seed")))
        throw usage_error("--bootstrap and --seed set the patient bootstrap: give --patient-level too");
    return opt;
}

/// A metric as printed: 4 decimals.
inline std::string fixed4(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return b;
}

/// One warning on stderr when a patient of --data has images in two splits: a test patient
/// seen in training makes every metric on that split optimistic (`micle check` lists them).
inline void warn_if_leaks(const options& o, const char* command) {
    const auto spec = o.required("data");
    std::vector<data::patient_leak> leaks;
    if (const auto* all = whole_source(o)) {
        std::map<std::string, data::dataset> splits;
        for (const std::string split : {"train", "val", "test"}) {
            try {  // a split the source does not have is no leak (as data::try_open_split)
                splits.emplace(split, data::select_split(*all, split, open_options_from(o)));
            } catch (const data::data_error& e) {
                if (std::string(e.what()).find("has no " + split + " images") == std::string::npos) throw;
            }
        }
        leaks = data::find_leaks(splits);
    } else {
        leaks = data::find_leaks(spec, open_options_from(o));
    }
    if (leaks.empty()) return;
    const auto& l = leaks.front();
    std::fprintf(stderr, "micle %s: warning: %zu patients of %s have images in two splits (the patient of %s is in %s and %s); "
                         "metrics on those splits are optimistic; `micle check --data %s` lists them\n",
                 command, leaks.size(), spec.c_str(), l.image_a.c_str(), l.split_a.c_str(), l.split_b.c_str(), spec.c_str());
}

/// The backbone options given (--arch, --width, --stem, --base-channels, --channels), as
/// the recipes take them: checkpoint metadata keys.
inline std::map<std::string, std::string> model_options(const options& o) {
    std::map<std::string, std::string> m;
    for (const char* k : {"arch", "width", "stem", "base-channels", "channels"})
        if (o.has(k)) m[k] = o.str(k);
    return m;
}

/// The options every training command takes, besides its own `extra` ones.
inline std::set<std::string> with_training_options(std::set<std::string> extra) {
    for (const char* k : {"data", "out", "init", "arch", "width", "stem", "base-channels", "channels", "image-size", "epochs",
                          "batch-size", "optimizer", "lr", "weight-decay", "warmup-epochs", "max-samples", "workers", "seed",
                          "stop-after", "checkpoint-every", "keep-last"})
        extra.insert(k);
    return with_backend_options(std::move(extra));
}

/// The library trainer's options and the optimizer from the command line.
inline train::fit_options fit_options_from(const options& o) {
    train::fit_options f;
    f.epochs = o.integer("epochs", 10);
    f.batch = o.integer("batch-size", 64);
    f.run_dir = o.required("out");
    f.resume = o.has("resume");
    f.checkpoint_every = o.integer("checkpoint-every", 0);
    f.keep_last = int(o.integer("keep-last", 1));
    f.workers = int(o.integer("workers", 2));
    if (f.epochs < 1 || f.batch < 1 || f.workers < 1 || f.keep_last < 1 || f.checkpoint_every < 0)
        throw usage_error("need --epochs >= 1, --batch-size >= 1, --workers >= 1, --keep-last >= 1, --checkpoint-every >= 0");
    return f;
}
inline train::optimizer_choice optimizer_from(const options& o, const char* fallback) {
    return {o.str("optimizer", fallback), o.number("lr", -1), o.number("weight-decay", -1)};
}

/// The trainer's callbacks: a progress line, metrics.jsonl, --stop-after, and a stop with
/// a checkpoint on SIGTERM, SIGINT or SIGUSR1.
inline auto cli_callbacks(const options& o, const train::fit_options& fo) {
    return std::tuple(train::progress(), train::jsonl(fo.run_dir / "metrics.jsonl"),
                      train::stop_on_signal(), train::stop_after_epoch{o.integer("stop-after", fo.epochs)});
}

/// The exit code of a training command that a signal stopped (checkpointed at the step it
/// reached; --resume continues): EX_TEMPFAIL, "try again later", for a job script that
/// requeues on it. Every rank returns it when any rank's signal stopped the run.
inline constexpr int exit_stopped_by_signal = 75;

/// exit_stopped_by_signal, after a line naming the checkpoint on rank 0, when a signal
/// stopped the run that `comm`'s ranks just trained; otherwise 0.
inline int stopped_by_signal(dist::communicator& comm, const char* cmd, const std::filesystem::path& run_dir) {
    const int sig = train::stop_on_signal::received();
    if (comm.sum(sig != 0 ? 1.0 : 0.0) == 0) return 0;
    if (comm.rank() == 0) {
        const auto latest = train::latest_checkpoint(run_dir);
        std::fprintf(stderr, "micle %s: stopped by %s, checkpointed at %s; run it again with --resume to continue (exit code %d)\n",
                     cmd, sig ? train::stop_on_signal::name(sig) : "a signal on another rank", latest.c_str(),
                     exit_stopped_by_signal);
    }
    return exit_stopped_by_signal;
}

/// Split `split` of --data when `flag` asks for it (a usage error naming `flag` when the
/// data has no such split).
inline std::optional<data::dataset> split_for(const options& o, const std::string& split, const char* flag) {
    if (!o.has(flag + 2)) return std::nullopt;
    try {
        return load_split(o, split);
    } catch (const usage_error& e) {
        throw usage_error(std::string(flag) + " needs a " + split + " split: " + e.what());
    }
}

}  // namespace micle::cli
