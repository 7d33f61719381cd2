#!/usr/bin/python3
"""micle against lightly (PyTorch 2.x): the same SimCLR recipe pretrained in both, on the
same images, with the same budget, then both encoders evaluated the same way.

  bench/compare_lightly.py [BUILD_DIR] [--seeds 3] [--epochs 6] [--pool 12000] ...
  bench/compare_lightly.py --first-seed 3 --seeds 1 --append    # one more seed into an earlier run
  bench/compare_lightly.py --without-lightly --epochs 24 --out runs/long   # micle and random init only

For each seed:
  1. `micle pretrain` (SimCLR, the main job's recipe: chest_xray preset with crops of 30-100%
     and rotations of +-10 degrees, LARS at base lr 1.7, batch 128 pairs, temperature 0.1,
     ResNet-18 small stem, base 16, 1 channel, 28 px) on a pool of Fashion-MNIST training
     images (Debian's dataset-fashion-mnist), and bench/lightly_pretrain.py - the recipe
     written in lightly and torchvision - on the same pool, each timed on the same machine
     with the same thread count (--threads; 2 data-loading workers each).
  2. Each encoder - and a random-init one, the baseline - is evaluated identically:
     `micle embed` writes its features of the pool and of the 10,000 test images, then
       - kNN accuracy: k = 20, cosine similarity, votes weighted exp(sim / 0.1) (lightly's
         knn_predict, micle's knn_monitor), the pool as the bank;
       - linear probe accuracy: scikit-learn's LogisticRegression on standardised features,
         trained on the pool;
       - fine-tuning at 10% of the pool's labels: `micle finetune --init ENCODER
         --label-fraction 0.1` (5 epochs, fine-tuning seed = seed + 1, the main job's settings) and `micle evaluate`.
--without-lightly leaves lightly out (steps 1 and 2 for micle and random init only): for budgets
longer than a side-by-side run can afford, with the lightly columns empty.
Prints one table: each metric's mean and spread (sample standard deviation) over the
seeds, per framework, and the pretraining wall time; writes every number to
OUT/results.json. PyTorch and lightly come from the bench venv (bench/pytorch_env.sh,
created on first use; --venv-python to use another), never from the library or CI.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_mnist  # noqa: E402


def write_pool(path, pool, seed):
    """A seeded pool of training images and the whole test set, as a MedMNIST-layout .npz both read."""
    (x, y), (tx, ty) = fashion_mnist.load("train"), fashion_mnist.load("test")
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:pool])
    np.savez(path, train_images=x[keep], train_labels=y[keep].reshape(-1, 1), test_images=tx, test_labels=ty.reshape(-1, 1))


def run(cmd, env=None, log=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if log:
        with open(log, "w") as f:
            f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        sys.exit(f"compare_lightly: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def knn_accuracy(bank, bank_labels, queries, query_labels, k=20, temperature=0.1, classes=10):
    def unit(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n > 0, n, 1)
    bank, queries = unit(bank.astype(np.float64)), unit(queries.astype(np.float64))
    correct = 0
    for start in range(0, len(queries), 1000):
        sim = queries[start:start + 1000] @ bank.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        w = np.exp(np.take_along_axis(sim, top, axis=1) / temperature)
        votes = np.zeros((len(sim), classes))
        np.add.at(votes, (np.repeat(np.arange(len(sim)), k), bank_labels[top].ravel()), w.ravel())
        correct += int((votes.argmax(axis=1) == query_labels[start:start + 1000]).sum())
    return correct / len(queries)


def probe_accuracy(train, train_labels, test, test_labels):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(train)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(train), train_labels)
    return float((clf.predict(scaler.transform(test)) == test_labels).mean())


def print_table(results, settings, where):
    """The side-by-side table (Markdown) of per-seed results: mean ± sample sd per cell, and
    micle - lightly paired by seed (a difference larger than its own spread is real)."""
    def stat(v, fmt="{:.4f}"):
        if len(v) == 1:  # one seed: no spread to give
            return fmt.format(v[0])
        return f"{fmt.format(statistics.mean(v))} ± {fmt.replace('+', '').format(statistics.stdev(v))}"

    with_lightly = all("lightly_run" in x for x in results)

    def lightly_cells(micle_values, key, paired, paired_fmt, fmt="{:.4f}", prefix=""):
        """The lightly column and the micle-against-lightly column ("- | -" without lightly)."""
        if not with_lightly:
            return "- | -"
        l = [x[f"lightly_{key}"] for x in results]
        return f"{stat(l, fmt)} | {prefix}{stat([paired(a, b) for a, b in zip(micle_values, l)], paired_fmt)}"
    lv = results[0]["lightly_run"] if with_lightly else None
    title = f"micle vs lightly {lv['lightly']} (torch {lv['torch']})" if lv else "micle (lightly left out)"
    print(f"\n{title}: SimCLR, ResNet-18 small stem base {settings['base']}, "
          f"{settings['pool']}-image Fashion-MNIST pool, {settings['epochs']} epochs, batch {settings['batch']}, "
          f"temperature {settings['temperature']}, LARS base lr {settings.get('lr', 0.3)}, crop area {settings.get('crop_min', 0.08)}-1, rotation "
          f"+-{settings.get('rotation', 45.0):g}, jitter {settings.get('jitter', 0.5)}, "
          f"{settings['threads']} threads; mean ± sd over {len(results)} seed(s) ({', '.join(str(r['seed']) for r in results)}); "
          f"test set of 10,000 images")
    print("| metric | micle | lightly | micle - lightly (paired) | random init |\n|---|---|---|---|---|")
    for label, key in [("kNN accuracy (k 20, cosine)", "knn"), ("linear probe accuracy", "probe"),
                       ("fine-tuned on 10% of labels", "ft10")]:
        m, r = ([x[f"{who}_{key}"] for x in results] for who in ("micle", "random"))
        print(f"| {label} | {stat(m)} | {lightly_cells(m, key, lambda a, b: a - b, '{:+.4f}')} | {stat(r)} |")
    m = [x["micle_seconds"] for x in results]
    print(f"| pretraining wall time (s) | {stat(m, '{:.0f}')} | "
          f"{lightly_cells(m, 'seconds', lambda a, b: a / b, '{:.2f}', '{:.0f}', 'ratio ')} | - |")
    print(f"(wall time of each pretraining command, start to exit, on {os.cpu_count()} cores; numbers in {where})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"), help="a build with examples/micle (build)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=1, help="run seeds first..first+seeds-1")
    p.add_argument("--append", action="store_true",
                   help="add these seeds to OUT/results.json (same settings) instead of starting it anew")
    p.add_argument("--epochs", type=int, default=6, help="pretraining epochs (the main job's 6)")
    p.add_argument("--pool", type=int, default=12000, help="pretraining and labelled pool (the main job's 12000)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--base", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1.7, help="LARS base learning rate, x batch / 256 (the main job's 1.7)")
    p.add_argument("--crop-min", type=float, default=0.3, help="smallest crop area (the main job's 0.3; the preset's 0.08)")
    p.add_argument("--rotation", type=float, default=10.0, help="rotation range in +- degrees (the main job's 10; the preset's 45)")
    p.add_argument("--jitter", type=float, default=0.5, help="colour jitter strength (the preset's 0.5)")
    p.add_argument("--ft-epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "compare-lightly"))
    p.add_argument("--venv-python", help="a python with torch, torchvision and lightly (default: bench/pytorch_env.sh's)")
    p.add_argument("--without-lightly", action="store_true",
                   help="micle and the random-init encoder only (no venv needed): for budgets too long to run both")
    p.add_argument("--table", metavar="RESULTS_JSON", help="only print the table of an earlier run's results.json")
    a = p.parse_args()
    if a.table:
        saved = json.load(open(a.table))
        return print_table(saved["seeds"], saved["settings"], a.table)
    micle = os.path.join(a.build, "examples", "micle")
    if not os.access(micle, os.X_OK):
        sys.exit(f"compare_lightly: no {micle}: build it first (cmake --build {a.build} --target micle_cli)")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("compare_lightly: scikit-learn is missing (apt install python3-sklearn)")
    venv = None
    if not a.without_lightly:
        venv = a.venv_python or run([os.path.join(ROOT, "bench", "pytorch_env.sh")]).stdout.strip().splitlines()[-1]
    os.makedirs(a.out, exist_ok=True)
    data = os.path.join(a.out, "pool.npz")
    write_pool(data, a.pool, 0)
    pool = np.load(data)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    model = ["--arch", "resnet18", "--stem", "small", "--base-channels", str(a.base), "--channels", "1",
             "--image-size", "28", "--precision", "fp32"]  # lightly trains in fp32 (auto is bf16 on AMX)
    results = []
    if a.append and os.path.exists(os.path.join(a.out, "results.json")):
        saved = json.load(open(os.path.join(a.out, "results.json")))
        keys = ["epochs", "pool", "batch", "base", "temperature", "lr", "crop_min", "rotation", "jitter", "ft_epochs", "threads"]
        if any(saved["settings"].get(k) != getattr(a, k) for k in keys) or \
                saved["settings"].get("without_lightly", False) != a.without_lightly:
            sys.exit(f"compare_lightly: --append: {a.out}/results.json was run with other settings")
        results = [r for r in saved["seeds"] if not a.first_seed <= r["seed"] < a.first_seed + a.seeds]
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        d = os.path.join(a.out, f"seed{seed}")
        os.makedirs(d, exist_ok=True)
        r = {"seed": seed}
        print(f"seed {seed}: micle pretraining", flush=True)
        t = time.perf_counter()
        run([micle, "pretrain", "--data", data, "--out", f"{d}/micle", "--pairs", "simclr", "--augment", "chest_xray",
             "--epochs", str(a.epochs), "--batch-size", str(a.batch), "--temperature", str(a.temperature),
             "--lr", str(a.lr), "--crop-min", str(a.crop_min), "--rotation", str(a.rotation), "--jitter", str(a.jitter),
             "--seed", str(seed), "--workers", "2", *model], env=env, log=f"{d}/micle-pretrain.log")
        r["micle_seconds"] = time.perf_counter() - t
        encoders = {"micle": f"{d}/micle", "random": f"{d}/random"}
        if not a.without_lightly:
            print(f"seed {seed}: lightly pretraining", flush=True)
            t = time.perf_counter()
            out = run([venv, os.path.join(ROOT, "bench", "lightly_pretrain.py"), "--data", data, "--out", f"{d}/lightly.safetensors",
                       "--epochs", str(a.epochs), "--batch", str(a.batch), "--base", str(a.base), "--temperature",
                       str(a.temperature), "--lr", str(a.lr), "--crop-min", str(a.crop_min), "--rotation", str(a.rotation),
                       "--jitter", str(a.jitter), "--seed", str(seed), "--threads", str(a.threads), "--workers", "2"],
                      env=env, log=f"{d}/lightly-pretrain.log")
            r["lightly_seconds"] = time.perf_counter() - t
            r["lightly_run"] = json.loads(out.stdout.strip().splitlines()[-1])
            encoders["lightly"] = f"{d}/lightly.safetensors"
        # The random-init encoder: a probe run without --init saves the seeded random backbone.
        run([micle, "finetune", "--data", data, "--out", f"{d}/random", "--linear-probe", "--epochs", "1",
             "--seed", str(seed), *model], env=env)
        for name, enc in encoders.items():
            print(f"seed {seed}: evaluating the {name} encoder", flush=True)
            feats = {}
            for split in ["train", "test"]:
                run([micle, "embed", "--data", data, "--model", enc, "--split", split, "--out", f"{d}/{name}-{split}"], env=env)
                feats[split] = np.load(f"{d}/{name}-{split}.features.npy")
            ytr, yte = pool["train_labels"].ravel().astype(np.int64), pool["test_labels"].ravel().astype(np.int64)
            r[f"{name}_knn"] = knn_accuracy(feats["train"], ytr, feats["test"], yte)
            r[f"{name}_probe"] = probe_accuracy(feats["train"], ytr, feats["test"], yte)
            ft = f"{d}/ft10-{name}"
            init = [] if name == "random" else ["--init", enc]
            run([micle, "finetune", "--data", data, *init, "--out", ft, "--label-fraction", "0.1", "--epochs",
                 str(a.ft_epochs), "--batch-size", "128", "--seed", str(seed + 1), *model], env=env)
            run([micle, "evaluate", "--data", data, "--model", ft, "--report", f"{ft}/report.json"], env=env)
            r[f"{name}_ft10"] = json.load(open(f"{ft}/report.json"))["accuracy"]
        results.append(r)
        results.sort(key=lambda x: x["seed"])
        print(json.dumps(r), flush=True)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({"settings": vars(a), "seeds": results}, f, indent=1)

    print_table(results, vars(a), os.path.join(a.out, "results.json"))

if __name__ == "__main__":
    main()
