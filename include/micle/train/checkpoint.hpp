#pragma once
// Model weights in and out of safetensors files under PyTorch state_dict names, so
// torchvision checkpoints load into micle and micle's load into torchvision.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <cstdio>
#include <fstream>

#include "micle/nn/parameter.hpp"
#include "micle/optim/optimizer.hpp"
#include "micle/train/safetensors.hpp"

namespace micle::train {

struct load_options {
    /// Every model tensor must be in the file and every file tensor in the model.
    /// Non-strict loading (e.g. an ImageNet checkpoint into a backbone without its `fc`,
    /// or into a model with a new head) reports the differences instead.
    bool strict = true;
    /// A 3-channel `conv1.weight` loaded into a 1-channel model is summed over its input
    /// channels (the usual way to start a grayscale model from RGB weights).
    bool adapt_input_channels = true;
};

struct load_report {
    std::vector<std::string> loaded, missing, unexpected, notes;
};

/// Writes parameters and buffers as F32 and counters as I64 scalars (PyTorch's
/// num_batches_tracked), atomically.
template <class B>
void save_weights(const std::filesystem::path& path, context<B>& ctx, const nn::state_list<B>& state,
                  const std::map<std::string, std::string>& metadata = {}) {
    safetensors::writer w;
    for (const auto* p : state.params) w.add_f32(p->name, p->value.shape(), p->value.to_host(ctx));
    for (const auto* b : state.buffers) w.add_f32(b->name, b->value.shape(), b->value.to_host(ctx));
    for (const auto* c : state.counters) {
        const std::int64_t v = c->value;
        w.add_i64(c->name, {}, std::span<const std::int64_t>(&v, 1));
    }
    for (const auto& [k, v] : metadata) w.set_metadata(k, v);
    w.write(path);
}

/// Reads every named tensor of `state` from `path`. Everything is validated before any
/// tensor is changed: on error the model is left as it was.
template <class B>
load_report load_weights(const std::filesystem::path& path, context<B>& ctx, nn::state_list<B>& state,
                         const load_options& opt = {}) {
    const safetensors::reader file(path);
    load_report report;
    struct pending {
        tensor<B>* target;
        std::vector<float> values;
    };
    std::vector<pending> assignments;
    std::vector<std::pair<nn::counter*, std::int64_t>> counters;
    std::map<std::string, bool> used;
    for (const auto& n : file.names()) used[n] = false;

    auto take = [&](const std::string& name, tensor<B>& target) {
        if (!file.contains(name)) {
            report.missing.push_back(name);
            return;
        }
        used[name] = true;
        const auto& info = file.at(name);
        const shape want = target.shape();
        const shape have = info.dims();
        std::vector<float> values = file.floats(name);
        if (!(have == want)) {
            const bool adapt = opt.adapt_input_channels && want.rank() == 4 && have.rank() == 4 && want[1] == 1 &&
                               have[1] == 3 && want[0] == have[0] && want[2] == have[2] && want[3] == have[3];
            if (!adapt)
                file.fail("tensor '", name, "' has shape ", have, " but the model's is ", want);
            std::vector<float> summed(static_cast<std::size_t>(want.numel()), 0.0f);
            const auto k = want[2] * want[3];
            for (std::int64_t o = 0; o < want[0]; ++o)
                for (std::int64_t c = 0; c < 3; ++c)
                    for (std::int64_t i = 0; i < k; ++i)
                        summed[static_cast<std::size_t>(o * k + i)] += values[static_cast<std::size_t>((o * 3 + c) * k + i)];
            values = std::move(summed);
            report.notes.push_back(micle::detail::cat("'", name, "' ", have, " summed over its 3 input channels for a 1-channel model"));
        }
        assignments.push_back({&target, std::move(values)});
        report.loaded.push_back(name);
    };
    for (auto* p : state.params) take(p->name, p->value);
    for (auto* b : state.buffers) take(b->name, b->value);
    for (auto* c : state.counters) {
        if (!file.contains(c->name)) {
            report.missing.push_back(c->name);
            continue;
        }
        used[c->name] = true;
        const auto v = file.integers(c->name);
        if (v.size() != 1) file.fail("tensor '", c->name, "' must hold one integer");
        counters.emplace_back(c, v[0]);
        report.loaded.push_back(c->name);
    }
    for (const auto& [name, u] : used)
        if (!u) report.unexpected.push_back(name);

    if (opt.strict && (!report.missing.empty() || !report.unexpected.empty())) {
        std::string msg;
        if (!report.missing.empty()) msg += micle::detail::cat(report.missing.size(), " model tensors are missing (first: '", report.missing.front(), "')");
        if (!report.unexpected.empty())
            msg += micle::detail::cat(msg.empty() ? "" : "; ", report.unexpected.size(), " file tensors are not in the model (first: '",
                               report.unexpected.front(), "')");
        file.fail(msg, "; load non-strictly to accept this");
    }
    for (auto& t : assignments) t.target->assign(ctx, t.values);
    for (auto& [c, v] : counters) c->value = v;
    return report;
}

}  // namespace micle::train

namespace micle::train {

// A training run's directory: `<dir>/ckpt-EEEEEE/` after EEEEEE completed epochs, or
// `<dir>/ckpt-EEEEEE-bBBBBBB/` BBBBBB batches into the next epoch (a step checkpoint;
// names sort in the order they were written). Each holds `model.safetensors` (weights,
// torchvision names, and the metadata) and `state.safetensors` (optimizer buffers under
// the learner's fixed names). `<dir>/latest` names the newest complete checkpoint, and
// `<dir>/best` the one a validation metric chose. A checkpoint is written completely,
// then `latest` is replaced atomically (temporary file, fsync, rename): a run killed at
// any moment leaves `latest` naming a complete checkpoint. prune_checkpoints() keeps
// the newest K and the best.

/// ckpt-EEEEEE, or ckpt-EEEEEE-bBBBBBB for a checkpoint `batch` batches into epoch `epoch` + 1.
inline std::string checkpoint_name(std::int64_t epoch, std::int64_t batch = 0) {
    char name[48];
    if (batch == 0)
        std::snprintf(name, sizeof name, "ckpt-%06lld", static_cast<long long>(epoch));
    else
        std::snprintf(name, sizeof name, "ckpt-%06lld-b%06lld", static_cast<long long>(epoch), static_cast<long long>(batch));
    return name;
}

namespace detail {
/// Writes `name` into `dir/file` atomically (a pointer such as `latest` or `best`).
inline void write_pointer(const std::filesystem::path& dir, const std::string& file, const std::string& name) {
    write_file_atomically<safetensors::io_error>(dir / file, name + "\n", "checkpoint pointer");
}
inline std::string read_pointer(const std::filesystem::path& dir, const std::string& file) {
    std::ifstream in(dir / file);
    std::string name;
    if (!in || !std::getline(in, name)) return {};
    return name;
}
}  // namespace detail

/// The checkpoint `<dir>/<pointer>` names (`latest` or `best`), checked to be complete.
inline std::filesystem::path named_checkpoint(const std::filesystem::path& dir, const std::string& pointer) {
    const auto name = detail::read_pointer(dir, pointer);
    if (name.empty())
        throw safetensors::io_error(micle::detail::cat("no ", pointer == "latest" ? "" : pointer + " ", "checkpoint in ", dir,
                                                       " (", dir / pointer, " is missing)"));
    const auto p = dir / name;
    if (!std::filesystem::exists(p / "model.safetensors") || !std::filesystem::exists(p / "state.safetensors"))
        throw safetensors::io_error(micle::detail::cat("checkpoint ", p, " named by ", dir / pointer, " is incomplete"));
    return p;
}
inline std::filesystem::path latest_checkpoint(const std::filesystem::path& dir) { return named_checkpoint(dir, "latest"); }
/// The checkpoint marked best by mark_best (a validation metric), if any.
inline std::filesystem::path best_checkpoint(const std::filesystem::path& dir) { return named_checkpoint(dir, "best"); }
inline void mark_best(const std::filesystem::path& dir, const std::filesystem::path& ckpt) {
    detail::write_pointer(dir, "best", ckpt.filename().string());
}

/// The weights file a user names: a .safetensors file as it is, a checkpoint directory's
/// model.safetensors, or a run directory's `selected` checkpoint (finetune --select) or
/// else its `latest`.
inline std::filesystem::path weights_file(const std::filesystem::path& spec) {
    if (!std::filesystem::is_directory(spec)) return spec;
    if (std::filesystem::exists(spec / "model.safetensors") && !std::filesystem::exists(spec / "latest"))
        return spec / "model.safetensors";
    return (std::filesystem::exists(spec / "selected") ? named_checkpoint(spec, "selected") : latest_checkpoint(spec)) /
           "model.safetensors";
}

/// Writes the model's weights and `state` (optimizer buffers, under their full names)
/// into `dir/name`, then points `latest` at it. Returns the checkpoint's directory.
template <class B>
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const std::string& name, context<B>& ctx,
                                      const nn::state_list<B>& model, const std::vector<optim::state_entry>& state,
                                      const std::map<std::string, std::string>& meta) {
    namespace fs = std::filesystem;
    const fs::path ck = dir / name;
    fs::create_directories(ck);
    save_weights(ck / "model.safetensors", ctx, model, meta);
    safetensors::writer w;
    for (const auto& e : state) w.add_f32(e.name, shape{static_cast<std::int64_t>(e.size)}, e.read());
    for (const auto& [k, v] : meta) w.set_metadata(k, v);
    w.write(ck / "state.safetensors");
    detail::write_pointer(dir, "latest", name);
    return ck;
}

/// Restores model weights and `state` from `ckpt` (a checkpoint directory); returns the
/// metadata saved with it. Everything is validated before anything changes.
template <class B>
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& ckpt, context<B>& ctx,
                                                   nn::state_list<B>& model, const std::vector<optim::state_entry>& state) {
    const safetensors::reader r(ckpt / "state.safetensors");
    std::vector<std::vector<float>> values;
    for (const auto& e : state) {
        values.push_back(r.floats(e.name));
        if (values.back().size() != e.size)
            r.fail("optimizer buffer '", e.name, "' has ", values.back().size(), " values, the model needs ", e.size);
    }
    load_weights(ckpt / "model.safetensors", ctx, model);
    for (std::size_t i = 0; i < state.size(); ++i) state[i].write(values[i]);
    return r.metadata();
}

/// A learner's whole training state: weights, optimizer buffers (the learner's fixed
/// names), and its step counter (metadata `step`).
template <class Learner>
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const std::string& name, Learner& learner,
                                      std::map<std::string, std::string> meta) {
    meta["step"] = std::to_string(learner.steps_done());
    return save_checkpoint(dir, name, learner.ctx(), learner.state(), learner.optimizer_state(), meta);
}
template <class Learner>
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& ckpt, Learner& learner) {
    auto model = learner.state();
    const auto meta = load_checkpoint(ckpt, learner.ctx(), model, learner.optimizer_state());
    const auto it = meta.find("step");
    if (it == meta.end()) throw safetensors::io_error(micle::detail::cat("checkpoint ", ckpt, " has no step counter"));
    learner.set_steps_done(std::stoll(it->second));
    return meta;
}

/// Removes all but the newest `keep_last` checkpoints of `dir` (by name, which is by
/// time), never the ones `latest` and `best` name.
inline void prune_checkpoints(const std::filesystem::path& dir, int keep_last) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && e.path().filename().string().rfind("ckpt-", 0) == 0) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    const auto latest = detail::read_pointer(dir, "latest"), best = detail::read_pointer(dir, "best");
    const std::size_t keep = static_cast<std::size_t>(std::max(keep_last, 1));
    for (std::size_t i = 0; i + keep < names.size(); ++i)
        if (names[i] != latest && names[i] != best) fs::remove_all(dir / names[i]);
}

}  // namespace micle::train
