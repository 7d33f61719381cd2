// micle plot: loss and learning-rate curves of a run, ROC curves of an evaluation, as SVG
// files drawn by gnuplot (Debian's gnuplot-nox).
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common.hpp"

namespace micle::cli {

const char* plot_usage =
    "usage: micle plot (--run DIR | --report FILE.json) [--out FILE.svg]\n"
    "  --run DIR              loss and learning rate per step from DIR/metrics.jsonl -> DIR/curves.svg\n"
    "  --report FILE.json     ROC curves from an evaluation (FILE.roc.csv) -> FILE.roc.svg\n"
    "  --out FILE.svg         where to write the plot instead\n"
    "Needs gnuplot (apt install gnuplot-nox; scripts/setup installs it).\n";

namespace {

void run_gnuplot(const fs::path& script) {
    if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
        throw data::data_error("gnuplot is not installed (apt install gnuplot-nox)");
    std::string cmd = "gnuplot '";  // appended, not "..." + string: g++ 12 -Wrestrict false positive
    cmd.append(script.string()).append("'");
    if (std::system(cmd.c_str()) != 0) throw data::data_error(micle::detail::cat("gnuplot failed on ", script.string()));
}

}  // namespace

int plot(int argc, char** argv) {
    const options o(argc, argv, 2, {"run", "report", "out"}, {});
    if (o.help()) {
        std::printf("%s", plot_usage);
        return 0;
    }
    if (o.has("run") == o.has("report")) throw usage_error("give exactly one of --run and --report");
    if (o.has("run")) {
        const fs::path dir = o.str("run");
        std::ifstream in(dir / "metrics.jsonl");
        if (!in) throw data::data_error(micle::detail::cat("no metrics.jsonl in ", dir.string()));
        const fs::path data_file = dir / "curves.dat", script = dir / "curves.gp";
        const fs::path svg = o.has("out") ? fs::path(o.str("out")) : dir / "curves.svg";
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
            if (!j.is_object()) throw data::data_error(micle::detail::cat((dir / "metrics.jsonl").string(), ":", lineno, ": not a micle metrics line"));
            if (j.contains("epoch_end")) continue;  // an epoch summary
            if (!j.contains("step") || !j.contains("loss") || !j.contains("lr") || !j["step"].is_number() || !j["lr"].is_number())
                throw data::data_error(micle::detail::cat((dir / "metrics.jsonl").string(), ":", lineno, ": not a micle metrics line"));
            dat << j["step"].get<double>() << ' ' << (j["loss"].is_number() ? j["loss"].get<double>() : NAN) << ' '
                << j["lr"].get<double>() << '\n';
            ++rows;
        }
        if (rows == 0) throw data::data_error(micle::detail::cat((dir / "metrics.jsonl").string(), " is empty"));
        dat.close();
        std::ofstream gp(script);
        gp << "set terminal svg size 900,420 dynamic background rgb 'white'\n"
           << "set output '" << svg.string() << "'\n"
           << "set multiplot layout 1,2 title '" << dir.filename().string() << "'\n"
           << "set xlabel 'step'; set ylabel 'loss'; set grid\n"
           << "plot '" << data_file.string() << "' using 1:2 with lines lw 1.5 title 'training loss'\n"
           << "set ylabel 'learning rate'\n"
           << "plot '" << data_file.string() << "' using 1:3 with lines lw 1.5 lc rgb '#d95f02' title 'learning rate'\n"
           << "unset multiplot\n";
        gp.close();
        run_gnuplot(script);
        std::printf("wrote %s\n", svg.c_str());
        return 0;
    }
    const fs::path report = o.str("report");
    const fs::path roc = fs::path(report).replace_extension(".roc.csv");
    if (!fs::exists(roc))
        throw data::data_error(micle::detail::cat("no ROC data ", roc.string(), " next to ", report.string(), " (run micle evaluate)"));
    const fs::path svg = o.has("out") ? fs::path(o.str("out")) : fs::path(report).replace_extension(".roc.svg");
    const fs::path script = fs::path(report).replace_extension(".roc.gp");
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
    run_gnuplot(script);
    std::printf("wrote %s\n", svg.c_str());
    return 0;
}

}  // namespace micle::cli
