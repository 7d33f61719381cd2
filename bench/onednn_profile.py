#!/usr/bin/python3
"""Where a oneDNN-backend run spends its time, from oneDNN's verbose log: milliseconds per
step and share of the total by primitive kind, propagation and implementation, and the
slowest convolution shapes with their nominal GFLOP/s.

    ONEDNN_VERBOSE=1 build/bench/bench_step --benchmark_filter=resnet18_imagenet > v.txt
    bench/onednn_profile.py v.txt [--steps N] [--top 16] [--reorders]

--reorders adds the reorders by pair of layouts, split into those of weights (a
convolution's weight shape: the per-step weight reorders that keeping weights in their
preferred layout removes) and the rest.

--steps defaults to the number of stem-convolution forward passes in the log (one per
step of a ResNet). Verbose mode itself slows each primitive call slightly.
"""
import argparse
import collections
import re


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--top", type=int, default=16)
    p.add_argument("--reorders", action="store_true")
    a = p.parse_args()
    rows = [line.strip().split(",") for line in open(a.log) if line.startswith("onednn_verbose,exec")]
    if not rows:
        raise SystemExit(f"{a.log}: no 'onednn_verbose,exec' lines (run with ONEDNN_VERBOSE=1)")
    stems = sum(1 for f in rows if f[3] == "convolution" and f[5] == "forward_training" and re.search(r"ic3oc", f[-2]))
    steps = a.steps or max(stems, 1)
    by_kind = collections.defaultdict(lambda: [0, 0.0])
    by_conv = collections.defaultdict(lambda: [0, 0.0])
    for f in rows:
        ms = float(f[-1])
        k = by_kind[(f[3], f[5], f[4])]
        k[0] += 1
        k[1] += ms
        if f[3] == "convolution":
            c = by_conv[(f[5], f[4], f[-2])]
            c[0] += 1
            c[1] += ms
    total = sum(v[1] for v in by_kind.values())
    print(f"{steps} steps, {total / steps:.0f} ms of primitives per step\n")
    print("| primitive | propagation | implementation | ms/step | share | calls/step |")
    print("|---|---|---|---|---|---|")
    for (kind, prop, impl), (n, ms) in sorted(by_kind.items(), key=lambda kv: -kv[1][1])[:a.top]:
        print(f"| {kind} | {prop} | {impl} | {ms / steps:.1f} | {100 * ms / total:.1f}% | {n / steps:.0f} |")
    print("\n| convolution | implementation | shape | ms/call | nominal GFLOP/s |")
    print("|---|---|---|---|---|")
    for (prop, impl, shape), (n, ms) in sorted(by_conv.items(), key=lambda kv: -kv[1][1])[:a.top]:
        d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", shape.replace("_", ""))}
        flops = 2 * d["mb"] * d["ic"] * d["oc"] * d["kh"] * d["kw"] * d["oh"] * d["ow"]
        print(f"| {prop} | {impl} | {shape} | {ms / n:.2f} | {flops / (ms / n) / 1e6:.0f} |")
    if a.reorders:
        reorders(rows, steps, a.top)


def reorders(rows, steps, top):
    weights = set()
    for f in rows:
        if f[3] == "convolution":
            d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", f[-2].replace("_", ""))}
            weights.add(f"{d['oc']}x{d['ic']}x{d['kh']}x{d['kw']}")
    by_pair = collections.defaultdict(lambda: [0, 0.0])
    for f in rows:
        if f[3] == "reorder":
            kind = "weights" if f[-2] in weights else "other"
            r = by_pair[(kind, f[6].replace(":f0", ""))]
            r[0] += 1
            r[1] += float(f[-1])
    totals = collections.defaultdict(float)
    for (kind, _), (_, ms) in by_pair.items():
        totals[kind] += ms
    print("\nreorders, ms/step: " + ", ".join(f"{k} {v / steps:.1f}" for k, v in sorted(totals.items())))
    print("\n| reorder of | layouts | ms/step | calls/step |")
    print("|---|---|---|---|")
    for (kind, pair), (n, ms) in sorted(by_pair.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"| {kind} | {pair} | {ms / steps:.1f} | {n / steps:.1f} |")


if __name__ == "__main__":
    main()
