#pragma once
// Model weights in and out of safetensors files under PyTorch state_dict names, so
// torchvision checkpoints load into micle and micle's load into torchvision.
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

/// A training run's checkpoint directory: `<dir>/ckpt-NNNNNN/` holds `model.safetensors`
/// (weights, torchvision names) and `state.safetensors` (optimizer buffers, step, epoch,
/// anything in `meta`); `<dir>/latest` names the newest complete one. A checkpoint is
/// written completely, then `latest` is replaced atomically (temporary file, fsync,
/// rename), then older checkpoints are removed - a run killed at any moment leaves
/// `latest` pointing at a complete checkpoint.
struct optimizer_states {
    std::string prefix;                 ///< e.g. "optim." or "head_optim."
    std::vector<optim::state_entry> entries;
};

inline std::filesystem::path latest_checkpoint(const std::filesystem::path& dir) {
    std::ifstream in(dir / "latest");
    std::string name;
    if (!in || !std::getline(in, name) || name.empty())
        throw safetensors::io_error(micle::detail::cat("no checkpoint in ", dir, " (", dir / "latest", " is missing)"));
    const auto p = dir / name;
    if (!std::filesystem::exists(p / "model.safetensors") || !std::filesystem::exists(p / "state.safetensors"))
        throw safetensors::io_error(micle::detail::cat("checkpoint ", p, " named by ", dir / "latest", " is incomplete"));
    return p;
}

template <class B>
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, std::int64_t index, context<B>& ctx,
                                      const nn::state_list<B>& model, const std::vector<optimizer_states>& optimizers,
                                      const std::map<std::string, std::string>& meta) {
    namespace fs = std::filesystem;
    char name[32];
    std::snprintf(name, sizeof name, "ckpt-%06lld", static_cast<long long>(index));
    const fs::path ck = dir / name;
    fs::create_directories(ck);
    save_weights(ck / "model.safetensors", ctx, model, meta);
    safetensors::writer w;
    for (const auto& o : optimizers)
        for (const auto& e : o.entries)
            w.add_f32(o.prefix + e.name, shape{static_cast<std::int64_t>(e.size)}, e.read());
    for (const auto& [k, v] : meta) w.set_metadata(k, v);
    w.write(ck / "state.safetensors");
    // Point `latest` at it atomically.
    const fs::path tmp = dir / ".latest.tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << name << "\n";
        out.flush();
        if (!out) throw safetensors::io_error(micle::detail::cat("cannot write ", tmp));
    }
    if (const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    fs::rename(tmp, dir / "latest");
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && e.path().filename().string().rfind("ckpt-", 0) == 0 && e.path().filename() != name)
            fs::remove_all(e.path());
    return ck;
}

/// Restores model and optimizer buffers from `ckpt` (a ckpt-NNNNNN directory); returns
/// the metadata saved with it.
template <class B>
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& ckpt, context<B>& ctx,
                                                   nn::state_list<B>& model, const std::vector<optimizer_states>& optimizers) {
    load_weights(ckpt / "model.safetensors", ctx, model);
    const safetensors::reader r(ckpt / "state.safetensors");
    for (const auto& o : optimizers)
        for (const auto& e : o.entries) {
            const auto v = r.floats(o.prefix + e.name);
            if (v.size() != e.size)
                r.fail("optimizer buffer '", o.prefix + e.name, "' has ", v.size(), " values, the model needs ", e.size);
            e.write(v);
        }
    return r.metadata();
}

}  // namespace micle::train
