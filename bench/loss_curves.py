#!/usr/bin/python3
"""Compares the per-step pretraining losses of two runs of the main job (scripts/run), e.g.
bf16 mixed precision against fp32 on the same machine: the same data, batches and seeds,
so step k of one run sees the batch of step k of the other.

    bench/loss_curves.py runs/main-job-bf16 runs/main-job-fp32 [--steps 200]

For each pretraining (simclr, micle): the mean and largest per-step |a - b| / b over the
first N steps, the worst 20-step window of means, and the last epoch's mean loss.
"""
import argparse
import json


def losses(path):
    return [json.loads(x)["loss"] for x in open(path) if '"step"' in x and '"loss"' in x]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--epoch-steps", type=int, default=93, help="steps of the last epoch to average")
    args = p.parse_args()
    for stage in ("simclr", "micle"):
        a, b = losses(f"{args.a}/{stage}/metrics.jsonl"), losses(f"{args.b}/{stage}/metrics.jsonl")
        n = min(args.steps, len(a), len(b))
        rel = [abs(x - y) / y for x, y in zip(a[:n], b[:n])]
        win = lambda v, i: sum(v[i:i + 20]) / 20  # noqa: E731
        worst = max(abs(win(a, i) - win(b, i)) / win(b, i) for i in range(0, n - 19))
        k = args.epoch_steps
        print(f"{stage}: first {n} steps: per-step |a - b| / b: mean {100 * sum(rel) / n:.2f}%, max {100 * max(rel):.2f}% "
              f"(step {rel.index(max(rel))}); loss at steps 0, 100, {n - 1}: a {a[0]:.4f} {a[100]:.4f} {a[n - 1]:.4f}, "
              f"b {b[0]:.4f} {b[100]:.4f} {b[n - 1]:.4f}; 20-step means, worst: {100 * worst:.2f}%; whole run {len(a)} "
              f"steps, last {k} steps' mean a {sum(a[-k:]) / k:.4f} b {sum(b[-k:]) / k:.4f}")


if __name__ == "__main__":
    main()
