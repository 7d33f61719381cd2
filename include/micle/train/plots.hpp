#pragma once
// Plots of a run as SVG files, drawn by gnuplot (Debian's gnuplot-nox; a clear error
// without it): the loss and learning rate per step from a run's metrics.jsonl, and the
// one-vs-rest ROC curves of an evaluation (write_roc_csv), and the paper's label-efficiency
// figure: a metric against the label fraction, a line per method with its 95% band
// (plot_sweep). The data and gnuplot script are
// left next to the plot, so a figure can be restyled by hand.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "micle/core/error.hpp"
#include "micle/data/csv.hpp"
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

/// The label-efficiency figure of a sweep CSV with columns method,fraction,metric,value,lo,hi
/// (one row per method, label fraction and metric, the interval the 95% band; the main
/// job's sweep.csv): a panel per metric, the label fraction on a log axis, a line per
/// method. Writes `svg` (default SWEEP.svg) and the same as PNG next to it; returns the SVG's
/// path.
inline std::filesystem::path plot_sweep(const std::filesystem::path& sweep, std::filesystem::path svg = {}) {
    std::ifstream in(sweep);
    check<data::data_error>(bool(in), "cannot open ", sweep.string());
    std::string line;
    check<data::data_error>(std::getline(in, line) && data::split_csv_line(line, sweep.string() + ":1") ==
                                                          std::vector<std::string>{"method", "fraction", "metric", "value", "lo", "hi"},
                            sweep.string(), ":1: want the header method,fraction,metric,value,lo,hi");
    // metric -> method -> rows "fraction value lo hi", in file order
    std::vector<std::string> metrics, methods;
    std::map<std::string, std::map<std::string, std::string>> rows;
    for (std::size_t n = 2; std::getline(in, line); ++n) {
        if (line.empty()) continue;
        const auto f = data::split_csv_line(line, sweep.string() + ":" + std::to_string(n));
        check<data::data_error>(f.size() == 6, sweep.string(), ":", n, ": ", f.size(), " fields, want 6");
        for (std::size_t k = 1; k < 6; k += k == 1 ? 2 : 1) {
            char* end = nullptr;
            std::strtod(f[k].c_str(), &end);
            check<data::data_error>(!f[k].empty() && end && *end == 0, sweep.string(), ":", n, ": '", f[k], "' is not a number");
        }
        if (std::find(metrics.begin(), metrics.end(), f[2]) == metrics.end()) metrics.push_back(f[2]);
        if (std::find(methods.begin(), methods.end(), f[0]) == methods.end()) methods.push_back(f[0]);
        rows[f[2]][f[0]] += f[1] + ' ' + f[3] + ' ' + f[4] + ' ' + f[5] + '\n';
    }
    check<data::data_error>(!metrics.empty(), sweep.string(), " has no rows");
    if (svg.empty()) svg = std::filesystem::path(sweep).replace_extension(".svg");
    const auto png = std::filesystem::path(svg).replace_extension(".png"), script = std::filesystem::path(svg).replace_extension(".gp");
    const auto dat = std::filesystem::path(svg).replace_extension(".dat");
    {
        std::ofstream d(dat);  // gnuplot data blocks: metric-major, a block per method, two blank lines apart
        for (const auto& m : metrics)
            for (const auto& method : methods) d << "# " << m << " / " << method << '\n' << rows[m][method] << "\n\n";
    }
    const char* colours[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"};
    auto body = [&](std::ostream& gp) {
        gp << "set multiplot layout 1," << metrics.size() << " title 'label efficiency (95% intervals)'\n"
           << "set logscale x; set xlabel 'fraction of labels'; set grid; set key bottom right; set style fill transparent solid 0.2 noborder\n";
        for (std::size_t m = 0; m < metrics.size(); ++m) {
            gp << "set ylabel '" << metrics[m] << "'\nplot ";
            for (std::size_t k = 0; k < methods.size(); ++k) {
                const auto index = m * methods.size() + k;
                const char* c = colours[k % 6];
                gp << "'" << dat.string() << "' index " << index << " using 1:3:4 with filledcurves lc rgb '" << c << "' notitle, '"
                   << dat.string() << "' index " << index << " using 1:2 with linespoints lw 2 pt 7 lc rgb '" << c << "' title '"
                   << methods[k] << "'" << (k + 1 < methods.size() ? ", " : "\n");
            }
        }
        gp << "unset multiplot\n";
    };
    {
        std::ofstream gp(script);
        gp << "set terminal svg size " << 460 * metrics.size() << ",420 dynamic background rgb 'white'\n"
           << "set output '" << svg.string() << "'\n";
        body(gp);
        gp << "set terminal pngcairo size " << 460 * metrics.size() << ",420 background rgb 'white'\n"
           << "set output '" << png.string() << "'\n";
        body(gp);
    }
    detail::run_gnuplot(script);
    return svg;
}

}  // namespace micle::train
