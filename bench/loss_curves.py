#!/usr/bin/python3
"""Compares the per-step pretraining losses of two runs of the main job (scripts/run), e.g.
bf16 mixed precision against fp32 on the same machine: the same data, batches and seeds,
so step k of one run sees the batch of step k of the other.

    bench/loss_curves.py runs/main-job-bf16 runs/main-job-fp32 [--steps 200]

For each pretraining (simclr, micle): the mean and largest per-step |a - b| / b over the
first N steps, the worst 20-step window of means, and the last epoch's mean loss.

With several runs a side (seeds; a comma-separated list each), the curves compared are
the means over each side's runs, step by step, and the spread between the seeds of side b
is printed next to it: how far apart two runs of the same precision are.

    bench/loss_curves.py runs/bf16-s1,runs/bf16-s2,runs/bf16-s3 runs/fp32-s1,runs/fp32-s2,runs/fp32-s3 \\
        --stages simclr
"""
import argparse
import json
import statistics


def losses(path):
    return [json.loads(x)["loss"] for x in open(path) if '"step"' in x and '"loss"' in x]


def windows(v, n, w=20):
    return [sum(v[i:i + w]) / w for i in range(0, n - w + 1)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--epoch-steps", type=int, default=93, help="steps of the last epoch to average")
    p.add_argument("--stages", default="simclr,micle")
    args = p.parse_args()
    for stage in args.stages.split(","):
        runs_a = [losses(f"{d}/{stage}/metrics.jsonl") for d in args.a.split(",")]
        runs_b = [losses(f"{d}/{stage}/metrics.jsonl") for d in args.b.split(",")]
        n = min([args.steps] + [len(r) for r in runs_a + runs_b])
        a = [statistics.fmean(r[i] for r in runs_a) for i in range(n)]
        b = [statistics.fmean(r[i] for r in runs_b) for i in range(n)]
        rel = [abs(x - y) / y for x, y in zip(a, b)]
        wa, wb = windows(a, n), windows(b, n)
        worst = max(abs(x - y) / y for x, y in zip(wa, wb))
        line = (f"{stage}: first {n} steps{' (means over %d and %d runs)' % (len(runs_a), len(runs_b)) if len(runs_a) + len(runs_b) > 2 else ''}: "
                f"per-step |a - b| / b: mean {100 * sum(rel) / n:.2f}%, max {100 * max(rel):.2f}% (step {rel.index(max(rel))}); "
                f"loss at steps 0, 100, {n - 1}: a {a[0]:.4f} {a[min(100, n - 1)]:.4f} {a[n - 1]:.4f}, "
                f"b {b[0]:.4f} {b[min(100, n - 1)]:.4f} {b[n - 1]:.4f}; 20-step means, worst: {100 * worst:.2f}%")
        if len(runs_b) > 1:
            # The spread of side b's own runs: the largest relative distance of a run's 20-step
            # means from their mean over the runs, per window, averaged over the windows.
            per_run = [windows(r, n) for r in runs_b]
            spread = [max(abs(r[i] - wb[i]) for r in per_run) / wb[i] for i in range(len(wb))]
            line += f"; b's runs around their mean (20-step means): {100 * statistics.fmean(spread):.2f}% on average, {100 * max(spread):.2f}% at most"
        if len(runs_a) == 1 and len(runs_b) == 1:
            k = args.epoch_steps
            ra, rb = runs_a[0], runs_b[0]
            line += f"; whole run {len(ra)} steps, last {k} steps' mean a {sum(ra[-k:]) / k:.4f} b {sum(rb[-k:]) / k:.4f}"
        print(line)


if __name__ == "__main__":
    main()
