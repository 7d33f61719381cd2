#!/usr/bin/python3
"""Per-cell differences of two sets of main-job runs (scripts/run) with the same seeds, e.g.
bf16 mixed precision against fp32: for each method and label fraction, the accuracy of
a's run minus b's run of the same seed, in points, then the mean over the seeds with the
standard error of those paired differences.

    R=docs/results
    bench/paired_cells.py $R/main-job-amx-bf16-lowered,$R/main-job-amx-3seeds/bf16/seed2,$R/main-job-amx-3seeds/bf16/seed3 \\
        $R/main-job-amx-fp32,$R/main-job-amx-3seeds/fp32/seed2,$R/main-job-amx-3seeds/fp32/seed3

Each argument: a comma-separated list of run directories, one per seed, in the same
seed order on both sides (each holds ft-<method>-<fraction>/report.json and
report-shifted.json).
"""
import argparse
import json
import statistics

FRACTIONS = ["0.1", "0.2", "0.5", "1.0"]
METHODS = [("supervised", "supervised"), ("simclr", "SimCLR + fine-tune"), ("micle", "MICLe + fine-tune")]


def accuracy(run, method, fraction, report):
    with open(f"{run}/ft-{method}-{fraction}/{report}") as f:
        return json.load(f)["accuracy"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    args = p.parse_args()
    a, b = args.a.split(","), args.b.split(",")
    if len(a) != len(b) or len(a) < 2:
        raise SystemExit("paired_cells.py: give the same number (at least 2) of run directories on each side")
    for report, title in (("report.json", "in distribution"), ("report-shifted.json", "shifted test set")):
        print(f"\n{title}: a - b, accuracy points: mean over {len(a)} seeds ± standard error of the paired "
              "differences (the per-seed differences)")
        print("| method \\ labels | " + " | ".join(f"{round(float(f) * 100)}%" for f in FRACTIONS) + " |")
        print("|---|" + "---|" * len(FRACTIONS))
        means = []
        for method, name in METHODS:
            cells = []
            for f in FRACTIONS:
                d = [100 * (accuracy(x, method, f, report) - accuracy(y, method, f, report)) for x, y in zip(a, b)]
                m, se = statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5
                means.append(m)
                cells.append(f"{m:+.2f} ± {se:.2f} ({', '.join(f'{x:+.1f}' for x in d)})")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print(f"mean over the {len(means)} cells: {statistics.fmean(means):+.2f} points; cells within 0.5 points: "
              f"{sum(abs(x) <= 0.5 for x in means)} of {len(means)}; mean |difference| "
              f"{statistics.fmean(abs(x) for x in means):.2f}")


if __name__ == "__main__":
    main()
