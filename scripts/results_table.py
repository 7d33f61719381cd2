#!/usr/bin/python3
"""The main job's tables (scripts/run): for each test set and metric, a row per method and a
column per label fraction, each cell the value with its 95% interval (Wilson for accuracy,
DeLong for the macro AUC; `micle evaluate`), or over several seeds the mean and the seeds'
sample standard deviation. Below each table, a line per pair of methods - each
pretraining against the supervised baseline, and MICLe against SimCLR - with the
difference at each fraction, its 95% interval and the paired test's p-value (`micle
compare`: DeLong for AUC, McNemar for accuracy, on the same test images); `*` marks
p < 0.05. Also writes the sweep CSV that `micle plot --sweep` draws.

Usage: results_table.py --dirs D1 [D2 ...] --fractions "0.1 0.2" --reports report.json[:TITLE] ...
                        [--sweep OUT.csv] [--footer TEXT]
Each Dk holds ft-METHOD-FRACTION/REPORT and compare/A-vs-B-FRACTION-REPORT (scripts/run).
"""
import argparse
import json
import math
import os
import sys

METHODS = [("supervised", "supervised (random init)"), ("simclr", "SimCLR + fine-tune"), ("micle", "MICLe + fine-tune")]
PAIRS = [("simclr", "supervised"), ("micle", "supervised"), ("micle", "simclr")]
NAMES = dict(METHODS)
SHORT = {"supervised": "supervised", "simclr": "SimCLR", "micle": "MICLe"}
METRICS = [("accuracy", "top-1 accuracy"), ("auc_macro", "macro AUC")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        sys.exit(f"results_table: {path} is missing (did every step of scripts/run finish?)")


def mean_sd(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def p_text(p):
    return "p<0.0001" if p < 1e-4 else f"p={p:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dirs", nargs="+", required=True)
    ap.add_argument("--fractions", required=True)
    ap.add_argument("--reports", nargs="+", required=True, help="REPORT.json:TITLE")
    ap.add_argument("--sweep")
    ap.add_argument("--methods", default="supervised simclr micle")
    a = ap.parse_args()
    fractions = a.fractions.split()
    methods = [m for m in a.methods.split()]
    seeds = len(a.dirs)
    sweep = ["method,fraction,metric,value,lo,hi"]
    out = []
    for spec in a.reports:
        report, _, title = spec.partition(":")
        tag = os.path.splitext(report)[0]  # names the compare files
        panel = "test" if tag == "report" else tag.replace("report-", "") + " test"  # names the figure's panels
        for key, metric in METRICS:
            out.append("")
            out.append(f"{title or report}: {metric}")
            cw = 26
            corner = "method \\ labels"
            out.append(f"{corner:<28}" + "".join(f"{f'{float(f) * 100:g}%':<{cw}}" for f in fractions))
            for m in methods:
                cells = []
                for f in fractions:
                    rs = [load(f"{d}/ft-{m}-{f}/{report}") for d in a.dirs]
                    vals = [r[key] for r in rs]
                    if seeds == 1:
                        lo, hi = rs[0][key + "_ci95"]
                        cells.append(f"{vals[0]:.4f} [{lo:.4f}, {hi:.4f}]")
                        sweep.append(f"{SHORT[m]},{f},{panel}: {metric},{vals[0]:.6f},{lo:.6f},{hi:.6f}")
                    else:
                        mu, sd = mean_sd(vals)
                        cells.append(f"{mu:.4f} ±{sd:.4f} (sd)")
                        # the band over seeds: the mean's 95% interval from the seeds' spread
                        half = 1.96 * sd / math.sqrt(seeds)
                        sweep.append(f"{SHORT[m]},{f},{panel}: {metric},{mu:.6f},{mu - half:.6f},{mu + half:.6f}")
                out.append(f"{NAMES[m]:<28}" + "".join(f"{c:<{cw}}" for c in cells))
            out.append("paired differences (A - B on the same test images; * p < 0.05, "
                       + ("DeLong" if key == "auc_macro" else "McNemar") + "):")
            for x, y in PAIRS:
                if x not in methods or y not in methods:
                    continue
                parts = []
                for f in fractions:
                    cs = [load(f"{d}/compare/{x}-vs-{y}-{f}-{tag}.json")[key] for d in a.dirs]
                    if seeds == 1:
                        c = cs[0]
                        lo, hi = c["ci95"]
                        star = " *" if c["p"] is not None and c["p"] < 0.05 else ""
                        parts.append(f"{float(f) * 100:g}% {c['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] {p_text(c['p'])}{star}")
                    else:
                        mu, sd = mean_sd([c["difference"] for c in cs])
                        sig = sum(1 for c in cs if c["p"] is not None and c["p"] < 0.05 and c["difference"] > 0)
                        worse = sum(1 for c in cs if c["p"] is not None and c["p"] < 0.05 and c["difference"] < 0)
                        parts.append(f"{float(f) * 100:g}% {mu:+.4f} ±{sd:.4f}, significant gain in {sig}/{seeds} seeds"
                                     + (f", loss in {worse}" if worse else ""))
                out.append(f"  {SHORT[x]} - {SHORT[y]}: " + "; ".join(parts))
    print("\n".join(out))
    if a.sweep:
        with open(a.sweep, "w") as f:
            f.write("\n".join(sweep) + "\n")


if __name__ == "__main__":
    main()
