#!/usr/bin/python3
"""Runs micle's bench_step and the same step in PyTorch (pytorch_step.py) one after the
other in this one command, on the same machine and thread count, and prints a markdown
table with both throughputs and their ratio. With --gpu: bench_step_gpu against PyTorch
on the same GPU, in TF32, bf16 mixed precision (PyTorch: autocast) and strict fp32.

Usage: bench/compare_pytorch.py BUILD_DIR [--threads 2] [--seconds 5] [--gpu]
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = [  # (arch, stem, resolution, samples per step), as in bench_step.cpp
    ("resnet18", "imagenet", 64, 64),
    ("resnet50", "imagenet", 64, 32),
    ("resnet18", "small", 32, 128),
]


GPU_CONFIGS = [  # (arch, stem, resolution, samples per step, precision), as in bench_step_gpu.cu
    ("resnet50", "imagenet", 224, 128, "tf32"),
    ("resnet18", "imagenet", 64, 256, "tf32"),
    ("resnet50", "imagenet", 224, 128, "bf16"),
    ("resnet18", "imagenet", 64, 256, "bf16"),
    ("resnet50", "imagenet", 224, 128, "fp32"),
    ("resnet18", "imagenet", 64, 256, "fp32"),
]


def compare_gpu(a, here):
    out = subprocess.run([os.path.join(a.build_dir, "bench", "bench_step_gpu"), "--benchmark_format=json",
                          f"--benchmark_min_time={a.seconds}"], check=True, capture_output=True, text=True)
    micle = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"bench_step_gpu: {b['error_message']}")
        micle[b["name"].split("/min_time")[0].replace("BM_step_gpu/", "")] = b
    print("| configuration | micle img/s | PyTorch img/s | ratio | micle TFLOP/s |")
    print("|---|---|---|---|---|")
    torch_version = device = ""
    for arch, stem, res, n, precision in GPU_CONFIGS:
        r = subprocess.run([sys.executable, os.path.join(here, "pytorch_step.py"), "--arch", arch, "--stem", stem, "--res",
                            str(res), "--n", str(n), "--device", "cuda", "--precision", precision, "--seconds",
                            str(a.seconds)], check=True, capture_output=True, text=True)
        t = json.loads(r.stdout.strip().splitlines()[-1])
        m = micle[t["name"]]
        torch_version, device = t["torch"], t["device"]
        print(f"| {t['name']} | {m['img/s']:.0f} | {t['img_per_s']:.0f} | {m['img/s'] / t['img_per_s']:.2f} | "
              f"{m['TFLOP/s']:.1f} |")
    print(f"\n{device}; PyTorch {torch_version}; micle: {next(iter(micle.values())).get('label', '')}. "
          "img/s counts both views of every sample.")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build_dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--gpu", action="store_true", help="bench_step_gpu against PyTorch on the GPU")
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if a.gpu:
        compare_gpu(a, here)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run([os.path.join(a.build_dir, "bench", "bench_step"), "--benchmark_format=json",
                          f"--benchmark_min_time={a.seconds}"], env=env, check=True, capture_output=True, text=True)
    micle = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        name = b["name"].split("/min_time")[0].replace("BM_step/", "")
        micle[name] = b
    rows = []
    for arch, stem, res, n in CONFIGS:
        r = subprocess.run([sys.executable, os.path.join(here, "pytorch_step.py"), "--arch", arch, "--stem", stem, "--res",
                            str(res), "--n", str(n), "--threads", str(a.threads), "--seconds", str(a.seconds)],
                           env=env, check=True, capture_output=True, text=True)
        torch_result = json.loads(r.stdout.strip().splitlines()[-1])
        name = torch_result["name"]
        m = micle[name]
        rows.append((name, m["img/s"], torch_result["img_per_s"], m["GFLOP/s"], m["peak_frac"], torch_result["torch"]))
    print(f"| configuration ({a.threads} threads) | micle img/s | PyTorch img/s | ratio | micle GFLOP/s | fraction of fp32 peak |")
    print("|---|---|---|---|---|---|")
    for name, mi, ti, gf, pf, _ in rows:
        print(f"| {name} | {mi:.1f} | {ti:.1f} | {mi / ti:.2f} | {gf:.0f} | {pf:.2f} |")
    print(f"\nPyTorch {rows[0][5]}; img/s counts both views of every sample.")


if __name__ == "__main__":
    main()
