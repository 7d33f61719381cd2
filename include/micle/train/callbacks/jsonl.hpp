#pragma once
// metrics.jsonl: every step and epoch of a run as a JSON line (train::fit callback).
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "micle/train/fit.hpp"

namespace micle::train {

/// Appends one JSON line per step ({"epoch", "step", "loss", "lr", "images_per_s"}) and
/// per epoch ({"epoch_end", "mean_loss", "seconds", "loader_wait_fraction", metrics...}) to
/// `path`, flushed line by line.
class jsonl {
public:
    static constexpr bool lead_only = true;  ///< rank 0 of a data-parallel run writes
    explicit jsonl(const std::filesystem::path& path) : path_(path), out_(open(path)) {
        check<value_error>(bool(out_), "jsonl: cannot write ", path);
    }
    void on_step(const step_info& s) {
        write({{"epoch", s.epoch}, {"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"images_per_s", s.images_per_s}});
    }
    void on_epoch_end(const epoch_info& e) {
        nlohmann::json j{{"epoch_end", e.epoch}, {"mean_loss", e.mean_loss}, {"seconds", e.seconds},
                         {"loader_wait_fraction", e.loader_wait_fraction}};
        for (const auto& [k, v] : e.metrics) j[k] = v;
        if (!e.checkpoint.empty()) j["checkpoint"] = e.checkpoint.filename().string();
        if (e.best) j["best"] = true;
        write(j);
    }

private:
    static std::ofstream open(const std::filesystem::path& path) {  // the run directory may not exist yet
        std::error_code ec;
        if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
        return std::ofstream(path, std::ios::app);
    }
    void write(const nlohmann::json& j) {
        out_ << j.dump() << '\n';
        out_.flush();
        check<value_error>(bool(out_), "jsonl: writing ", path_, " failed (disk full?)");
    }
    std::filesystem::path path_;
    std::ofstream out_;
};

}  // namespace micle::train
