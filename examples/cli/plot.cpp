// micle plot: loss and learning-rate curves of a run, ROC curves of an evaluation, as SVG
// files drawn by gnuplot (train::plot_curves, train::plot_roc).
#include "common.hpp"
#include "micle/train/plots.hpp"

namespace micle::cli {

const char* plot_usage =
    "usage: micle plot (--run DIR | --report FILE.json | --sweep FILE.csv) [--out FILE.svg]\n"
    "  --run DIR              loss and learning rate per step from DIR/metrics.jsonl -> DIR/curves.svg\n"
    "  --report FILE.json     ROC curves from an evaluation (FILE.roc.csv) -> FILE.roc.svg\n"
    "  --sweep FILE.csv       label efficiency: each metric against the label fraction, a line per method with\n"
    "                         its 95% band (columns method,fraction,metric,value,lo,hi) -> FILE.svg and FILE.png\n"
    "  --out FILE.svg         where to write the plot instead\n"
    "Needs gnuplot (apt install gnuplot-nox; scripts/setup installs it).\n";

int plot(int argc, char** argv) {
    const options o(argc, argv, 2, {"run", "report", "sweep", "out"}, {});
    if (o.help()) return std::printf("%s", plot_usage), 0;
    one_process("micle plot");
    if (int(o.has("run")) + int(o.has("report")) + int(o.has("sweep")) != 1)
        throw usage_error("give exactly one of --run, --report and --sweep");
    const auto svg = o.has("run")      ? train::plot_curves(o.str("run"), o.str("out"))
                     : o.has("report") ? train::plot_roc(o.str("report"), o.str("out"))
                                       : train::plot_sweep(o.str("sweep"), o.str("out"));
    std::printf("wrote %s\n", svg.c_str());
    return 0;
}

}  // namespace micle::cli
