// micle: SimCLR / MICLe pretraining, fine-tuning and evaluation from the command line.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "common.hpp"
#include "micle/core/malloc.hpp"
#include "micle/dist/launch.hpp"

namespace micle::cli {
namespace {
dist::communicator* world_ = nullptr;
}
dist::communicator& world() { return world_ ? *world_ : dist::self(); }
int pretrain(int argc, char** argv);
int finetune(int argc, char** argv);
int evaluate(int argc, char** argv);
int compare(int argc, char** argv);
int embed(int argc, char** argv);
int plot(int argc, char** argv);
int info(int argc, char** argv);
int check_data(int argc, char** argv);
int prepare(int argc, char** argv);
extern const char *pretrain_usage, *finetune_usage, *evaluate_usage, *compare_usage, *embed_usage, *check_usage,
    *prepare_usage, *plot_usage, *info_usage;

/// The commands: name, entry point, usage text (each command's file), one line of summary.
struct command {
    const char* name;
    int (*run)(int, char**);
    const char* const* usage;
    const char* summary;
};
const command commands[] = {
    {"pretrain", pretrain, &pretrain_usage, "contrastive pretraining: SimCLR, or MICLe with patient bags"},
    {"finetune", finetune, &finetune_usage, "supervised fine-tuning or a linear probe on a fraction of the labels"},
    {"evaluate", evaluate, &evaluate_usage,
     "accuracy, per-class and macro AUC with 95% intervals, confusion matrix, patient-level metrics"},
    {"compare", compare, &compare_usage, "two models on the same images: paired DeLong and McNemar tests, patient bootstrap"},
    {"embed", embed, &embed_usage, "a checkpoint's backbone features and the labels of a split, as .npy files"},
    {"check", check_data, &check_usage, "decode every image once: unreadable files, splits, class balance, patients in two splits"},
    {"prepare", prepare, &prepare_usage, "decode every image once into a prepared dataset file that trains with no decoding per epoch"},
    {"plot", plot, &plot_usage, "loss/learning-rate curves of a run, ROC curves of an evaluation (SVG, gnuplot)"},
    {"info", info, &info_usage, "version, backend and device"},
};

std::string top_usage() {
    std::string s = "usage: micle <command> [options]   (micle <command> --help for its options)\n";
    for (const auto& c : commands) s += micle::detail::cat("  ", c.name, std::string(11 - std::strlen(c.name), ' '), c.summary, "\n");
    return s;
}
}  // namespace micle::cli

int main(int argc, char** argv) {
    using namespace micle::cli;
    // oneDNN's OpenMP threads spin after each primitive by default, which starves the data
    // loader's threads on a small machine (measured: 2.3x slower pretraining on 2 cores).
    // libgomp reads OMP_WAIT_POLICY when it loads, before main, so the trainer restarts
    // itself once with a passive policy unless the user chose one.
    if (!std::getenv("OMP_WAIT_POLICY")) {
        ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
    }
    // Decoded scans are 8-32 MiB buffers made and freed per image: keep them in the heap.
    micle::keep_large_blocks();
    // Under mpirun or srun with several ranks: MPI, every rank a data-parallel replica.
    std::optional<micle::dist::launch> ranks;
    try {
        ranks.emplace(argc, argv);
    } catch (const std::exception& e) {
        return std::fprintf(stderr, "micle: %s\n", e.what()), 1;
    }
    world_ = &ranks->comm();
    auto fail = [&](int code) { return ranks->fail(code); };
    const std::string who = world().size() > 1 ? micle::detail::cat(" (rank ", world().rank(), ")") : std::string();
    const std::string top = top_usage();
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        std::printf("%s", top.c_str());
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    const command* found = nullptr;
    for (const auto& c : commands)
        if (cmd == c.name) found = &c;
    const char* usage = found ? *found->usage : top.c_str();
    try {
        if (found) return found->run(argc, argv);
        std::fprintf(stderr, "micle: unknown command '%s'\n%s", cmd.c_str(), top.c_str());
        return 2;
    } catch (const micle::nonfinite_loss_error& e) {  // training diverged: its own exit code
        std::fprintf(stderr, "micle %s%s: stopping: %s\n", cmd.c_str(), who.c_str(), e.what());
        return fail(3);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "micle %s%s: %s\n%s", cmd.c_str(), who.c_str(), e.what(), usage);
        return fail(2);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "micle %s%s: error: %s\n", cmd.c_str(), who.c_str(), e.what());
        return fail(1);
    }
}
