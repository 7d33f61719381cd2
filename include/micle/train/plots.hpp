#pragma once
// Plots of a run as SVG files, drawn by gnuplot (Debian's gnuplot-nox; a clear error
// without it): the loss and learning rate per step from a run's metrics.jsonl, and the
// one-vs-rest ROC curves of an evaluation (write_roc_csv). The data and gnuplot script are
// left next to the plot, so a figure can be restyled by hand.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "micle/core/error.hpp"
#include "micle/data/dataset.hpp"

namespace micle::train {

namespace detail {
inline void run_gnuplot(const std::filesystem::path& script) {
    check<data::data_error>(std::system("command -v gnuplot >/dev/null 2>&1") == 0, "gnuplot is not installed (apt install gnuplot-nox)");
    std::string cmd = "gnuplot '";  // appended, not "..." + string: g++ 12 -Wrestrict false positive
    cmd.append(script.string()).append("'");
    check<data::data_error>(std::system(cmd.c_str()) == 0, "gnuplot failed on ", script.string());
}
}  // namespace detail

/// Training loss and learning rate against the step, from run_dir/metrics.jsonl (train::jsonl)
/// -> `svg` (default run_dir/curves.svg). Returns the SVG's path.
inline std::filesystem::path plot_curves(const std::filesystem::path& run_dir, std::filesystem::path svg = {}) {
    const auto metrics = run_dir / "metrics.jsonl";
    std::ifstream in(metrics);
    check<data::data_error>(bool(in), "no metrics.jsonl in ", run_dir.string());
    const auto data_file = run_dir / "curves.dat", script = run_dir / "curves.gp";
    if (svg.empty()) svg = run_dir / "curves.svg";
    std::ofstream dat(data_file);
    std::string line;
    std::size_t rows = 0, lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
            j = nullptr;
        }
        if (j.is_object() && j.contains("epoch_end")) continue;  // an epoch summary
        check<data::data_error>(j.is_object() && j.contains("step") && j.contains("loss") && j.contains("lr") &&
                                    j["step"].is_number() && j["lr"].is_number(),
                                metrics.string(), ":", lineno, ": not a micle metrics line");
        dat << j["step"].get<double>() << ' ' << (j["loss"].is_number() ? j["loss"].get<double>() : NAN) << ' '
            << j["lr"].get<double>() << '\n';
        ++rows;
    }
    check<data::data_error>(rows > 0, metrics.string(), " is empty");
    dat.close();
    std::ofstream gp(script);
    gp << "set terminal svg size 900,420 dynamic background rgb 'white'\n"
       << "set output '" << svg.string() << "'\n"
       << "set multiplot layout 1,2 title '" << run_dir.filename().string() << "'\n"
       << "set xlabel 'step'; set ylabel 'loss'; set grid\n"
       << "plot '" << data_file.string() << "' using 1:2 with lines lw 1.5 title 'training loss'\n"
       << "set ylabel 'learning rate'\n"
       << "plot '" << data_file.string() << "' using 1:3 with lines lw 1.5 lc rgb '#d95f02' title 'learning rate'\n"
       << "unset multiplot\n";
    gp.close();
    detail::run_gnuplot(script);
    return svg;
}

/// The ROC curves of an evaluation report (its REPORT.roc.csv) -> `svg` (default
/// REPORT.roc.svg). Returns the SVG's path.
inline std::filesystem::path plot_roc(const std::filesystem::path& report, std::filesystem::path svg = {}) {
    const auto roc = std::filesystem::path(report).replace_extension(".roc.csv");
    check<data::data_error>(std::filesystem::exists(roc), "no ROC data ", roc.string(), " next to ", report.string(),
                            " (run micle evaluate)");
    if (svg.empty()) svg = std::filesystem::path(report).replace_extension(".roc.svg");
    const auto script = std::filesystem::path(report).replace_extension(".roc.gp");
    std::ifstream in(roc);
    std::string line;
    std::getline(in, line);
    int classes = 0;
    while (std::getline(in, line)) classes = std::max(classes, std::atoi(line.c_str()) + 1);
    std::ofstream gp(script);
    gp << "set terminal svg size 640,600 dynamic background rgb 'white'\n"
       << "set output '" << svg.string() << "'\n"
       << "set datafile separator ','\n"
       << "set title 'ROC curves (one-vs-rest)'; set xlabel 'false positive rate'; set ylabel 'true positive rate'\n"
       << "set xrange [0:1]; set yrange [0:1]; set grid; set key bottom right\n"
       << "plot ";
    for (int c = 0; c < classes; ++c)
        gp << "'" << roc.string() << "' every ::1 using ($1==" << c << "?$2:NaN):3 with lines lw 1.5 title 'class " << c << "', ";
    gp << "x with lines dt 2 lc rgb 'gray' title 'chance'\n";
    gp.close();
    detail::run_gnuplot(script);
    return svg;
}

}  // namespace micle::train
