#!/usr/bin/python3
"""Runs micle's bench_step and the same step in PyTorch (pytorch_step.py) one after the
other in this one command, on the same machine and thread count, and prints a markdown
table with both throughputs and their ratio. With --gpu: bench_step_gpu against PyTorch
on the same GPU, in TF32, bf16 mixed precision (PyTorch: autocast) and strict fp32.

On the CPU it compares with current PyTorch 2.x (from PyPI, in the virtual environment
bench/pytorch_env.sh creates on first use) and with Debian's python3-torch, in interleaved
rounds: in each, every configuration runs on both sides back to back, and the ratio shown
is the median of these side-by-side ratios (this shared machine's speed drifts by 20-30%
over minutes; pairing keeps the drift out of a ratio more than medians of each side do).

Usage: bench/compare_pytorch.py BUILD_DIR [--threads 2] [--seconds 5] [--repeats 3] [--no-venv] [--gpu]
"""
import argparse
import json
import os
import re
import subprocess
import sys

CONFIGS = [  # (arch, stem, resolution, samples per step, precision), as in bench_step.cpp
    ("resnet18", "imagenet", 64, 64, "fp32"),
    ("resnet50", "imagenet", 64, 32, "fp32"),
    ("resnet18", "small", 32, 128, "fp32"),
    ("resnet18", "imagenet", 64, 64, "bf16"),
    ("resnet50", "imagenet", 64, 32, "bf16"),
    ("resnet18", "small", 32, 128, "bf16"),
]


def config_name(arch, stem, res, n, precision):
    return f"{arch}_{stem}/{res}/{n}x2" + ("/bf16" if precision == "bf16" else "")


GPU_CONFIGS = [  # (arch, stem, resolution, samples per step, precision), as in bench_step_gpu.cu
    ("resnet50", "imagenet", 224, 128, "tf32"),
    ("resnet18", "imagenet", 64, 256, "tf32"),
    ("resnet50", "imagenet", 224, 128, "bf16"),
    ("resnet18", "imagenet", 64, 256, "bf16"),
    ("resnet50", "imagenet", 224, 128, "fp32"),
    ("resnet18", "imagenet", 64, 256, "fp32"),
]


def compare_gpu(a, here):
    configs = [c for c in GPU_CONFIGS if a.filter in "{}_{}/{}/{}x2/{}".format(*c)]
    out = subprocess.run([os.path.join(a.build_dir, "bench", "bench_step_gpu"), "--benchmark_format=json",
                          f"--benchmark_min_time={a.seconds}", f"--benchmark_filter={re.escape(a.filter) or '.'}"],
                         check=True, capture_output=True, text=True)
    if a.save:
        with open(os.path.join(a.save, "bench_step_gpu.json"), "w") as f:
            f.write(out.stdout)
    micle = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"bench_step_gpu: {b['error_message']}")
        micle[b["name"].split("/min_time")[0].split("/real_time")[0].replace("BM_step_gpu/", "")] = b
    print("| configuration | micle img/s | PyTorch img/s | ratio | micle TFLOP/s | micle img/s, find_algorithms |")
    print("|---|---|---|---|---|---|")
    torch_version = device = ""
    for arch, stem, res, n, precision in configs:
        r = subprocess.run([sys.executable, os.path.join(here, "pytorch_step.py"), "--arch", arch, "--stem", stem, "--res",
                            str(res), "--n", str(n), "--device", "cuda", "--precision", precision, "--seconds",
                            str(a.seconds)], check=True, capture_output=True, text=True)
        t = json.loads(r.stdout.strip().splitlines()[-1])
        if a.save:
            with open(os.path.join(a.save, "pytorch_step_gpu.jsonl"), "a") as f:
                f.write(json.dumps(t) + "\n")
        m = micle[t["name"]]
        torch_version, device = t["torch"], t["device"]
        found = micle.get(t["name"] + "/find")
        found_ips = f"{found['img/s']:.0f}" if found else ""
        print(f"| {t['name']} | {m['img/s']:.0f} | {t['img_per_s']:.0f} | {m['img/s'] / t['img_per_s']:.2f} | "
              f"{m['TFLOP/s']:.1f} | {found_ips} |")
    print(f"\n{device}; PyTorch {torch_version}; micle: {next(iter(micle.values())).get('label', '')}. "
          "img/s counts both views of every sample.")


def pythons_with_torch(a, here):
    """(label, python) for each PyTorch to compare against: PyTorch 2.x from the bench venv
    (created on demand by pytorch_env.sh) unless --no-venv, then Debian's python3-torch."""
    found = []
    if a.venv_python:
        found.append(a.venv_python)
    elif not a.no_venv:
        found.append(subprocess.run([os.path.join(here, "pytorch_env.sh")], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    found.append("/usr/bin/python3")
    out = []
    for py in found:
        r = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
        if r.returncode == 0:
            out.append((r.stdout.strip(), py))
        else:
            print(f"compare_pytorch.py: no torch in {py}, left out", file=sys.stderr)
    if not out:
        sys.exit("compare_pytorch.py: no PyTorch to compare with")
    return out


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])


def micle_step(a, env, name):
    """bench_step's result (Google Benchmark's JSON entry) for one configuration."""
    out = subprocess.run([os.path.join(a.build_dir, "bench", "bench_step"), "--benchmark_format=json",
                          f"--benchmark_min_time={a.seconds}", f"--benchmark_filter=^BM_step/{re.escape(name)}/min_time"],
                         env=env, check=True, capture_output=True, text=True)
    found = json.loads(out.stdout)["benchmarks"]
    if len(found) != 1:
        sys.exit(f"compare_pytorch.py: bench_step ran {len(found)} benchmarks for {name}, not 1")
    return found[0]


def torch_step(a, env, here, py, config):
    """img/s of pytorch_step.py under the python `py` for one configuration."""
    arch, stem, res, n, precision = config
    r = subprocess.run([py, os.path.join(here, "pytorch_step.py"), "--arch", arch, "--stem", stem, "--res", str(res),
                        "--n", str(n), "--threads", str(a.threads), "--seconds", str(a.seconds), "--precision",
                        precision], env=env, check=True, capture_output=True, text=True)
    t = json.loads(r.stdout.strip().splitlines()[-1])
    if t["name"] != config_name(*config):
        sys.exit(f"compare_pytorch.py: pytorch_step.py measured {t['name']}, not {config_name(*config)}")
    return t["img_per_s"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build_dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the table shows medians")
    p.add_argument("--venv-python", help="python of an environment with PyTorch 2.x (default: bench/pytorch_env.sh's)")
    p.add_argument("--no-venv", action="store_true", help="compare with Debian's python3-torch only")
    p.add_argument("--filter", default="", help="only configurations whose name contains this")
    p.add_argument("--gpu", action="store_true", help="bench_step_gpu against PyTorch on the GPU")
    p.add_argument("--save", help="--gpu: a folder for both sides' raw results (bench_step_gpu.json, pytorch_step_gpu.jsonl)")
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if a.gpu:
        compare_gpu(a, here)
        return
    torches = pythons_with_torch(a, here)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    configs = [c for c in CONFIGS if a.filter in config_name(*c)]
    micle, torch_ips, skipped = {}, {}, {}
    # Interleaved and paired: each round runs, configuration by configuration, micle's step
    # and then each PyTorch's (every other round in the reverse order), so that the two
    # sides of a ratio are measured within seconds of each other and a slow spell of this
    # shared machine hits both. The ratio columns are medians of these per-round ratios.
    for rnd in range(a.repeats):
        for c in configs:
            name = config_name(*c)
            sides = [None] + [py for _, py in torches]  # None: micle
            for side in (sides if rnd % 2 == 0 else reversed(sides)):
                if name in skipped:  # found in round 1, where micle runs first
                    break
                if side is None:
                    b = micle_step(a, env, name)
                    if b.get("error_occurred"):  # bf16 rows on a CPU without AVX512-BF16
                        skipped[name] = b["error_message"]
                    else:
                        micle.setdefault(name, []).append(b)
                else:
                    torch_ips.setdefault((side, name), []).append(torch_step(a, env, here, side, c))
        print(f"round {rnd + 1}/{a.repeats} done", file=sys.stderr)
    head = f"| configuration ({a.threads} threads) | micle img/s |"
    rule = "|---|---|"
    for version, _ in torches:
        head += f" PyTorch {version} img/s | ratio |"
        rule += "---|---|"
    print(head + " micle GFLOP/s | fraction of fp32 peak | micle bf16 / fp32 |")
    print(rule + "---|---|---|")
    for c in configs:
        name = config_name(*c)
        if name in skipped:
            print(f"| {name} | {skipped[name]} |")
            continue
        runs = micle[name]
        mi = median([b["img/s"] for b in runs])
        row = f"| {name} | {mi:.1f} |"
        for _, py in torches:
            ts = torch_ips[(py, name)]
            ratios = [b["img/s"] / t for b, t in zip(runs, ts)]
            spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
            row += f" {median(ts):.1f} | {median(ratios):.2f}{spread} |"
        bf16 = c[4] == "bf16"
        fp32_name = config_name(*c[:4], "fp32")
        speedup = f"{mi / median([b['img/s'] for b in micle[fp32_name]]):.2f}" if bf16 and fp32_name in micle else "-"
        peak = "-" if bf16 else f"{median([b['peak_frac'] for b in runs]):.2f}"
        print(row + f" {median([b['GFLOP/s'] for b in runs]):.0f} | {peak} | {speedup} |")
    label = next((b[0].get("label", "").rsplit(",", 1)[0] for b in micle.values() if b), "")  # without the precision
    print(f"\nMedians of {a.repeats} interleaved rounds; a ratio is the median of the rounds' ratios, each of a "
          "micle run and a PyTorch run side by side (their range in brackets); img/s counts both views of every "
          f"sample; bf16 rows: micle's bf16 mixed precision and PyTorch's CPU autocast(bfloat16). micle: {label}.")


if __name__ == "__main__":
    main()
