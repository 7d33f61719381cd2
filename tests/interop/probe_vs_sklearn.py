#!/usr/bin/python3
"""micle's linear probe against scikit-learn's on the same frozen features.

A small, imbalanced binary image set (Fashion-MNIST T-shirt/top vs shirt, 3:1, from
Debian's dataset-fashion-mnist) and a random-init ResNet-18 (small stem): the case where a
probe without feature normalisation predicts the majority class for every image. `micle
finetune --linear-probe` trains the probe, `micle evaluate` scores it; `micle embed` writes
the same backbone's features, and scikit-learn's standardised LogisticRegression is trained
on them. micle's probe must be within 1 accuracy point of scikit-learn's (or better), and
both must beat the majority class.
Usage: probe_vs_sklearn.py MICLE_BINARY WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import fashion_mnist  # noqa: E402

micle, work = sys.argv[1], sys.argv[2]
try:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
except ImportError:
    print("probe-vs-sklearn: FAIL: scikit-learn is missing (apt install python3-sklearn; scripts/setup installs it)")
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

def subset(images, labels, n_major, n_minor):
    """T-shirt/top (0) as the majority class 0, shirt (6) as the minority class 1."""
    major, minor = np.flatnonzero(labels == 0)[:n_major], np.flatnonzero(labels == 6)[:n_minor]
    keep = np.sort(np.concatenate([major, minor]))
    return images[keep], (labels[keep] == 6).astype(np.uint8).reshape(-1, 1)


tr_x, tr_y = subset(*fashion_mnist.load("train"), 1500, 500)
te_x, te_y = subset(*fashion_mnist.load("test"), 600, 200)
data = f"{work}/shirts.npz"
np.savez(data, train_images=tr_x, train_labels=tr_y, test_images=te_x, test_labels=te_y)


def run(*args):
    r = subprocess.run([micle, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"probe-vs-sklearn: FAIL: micle {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")
        sys.exit(1)
    return r


MODEL = ["--arch", "resnet18", "--stem", "small", "--base-channels", "8", "--image-size", "28", "--workers", "2",
         "--precision", "fp32"]  # the same arithmetic on every CPU (auto is bf16 on AMX)
run("finetune", "--data", data, "--out", f"{work}/probe", "--linear-probe", "--batch-size", "64", "--seed", "1", *MODEL)
run("evaluate", "--data", data, "--model", f"{work}/probe", "--report", f"{work}/report.json")
micle_acc = json.load(open(f"{work}/report.json"))["accuracy"]
for split in ["train", "test"]:
    run("embed", "--data", data, "--model", f"{work}/probe", "--split", split, "--out", f"{work}/{split}")

failures = []
f_tr, y_tr = np.load(f"{work}/train.features.npy"), np.load(f"{work}/train.labels.npy")
f_te, y_te = np.load(f"{work}/test.features.npy"), np.load(f"{work}/test.labels.npy")
if f_tr.shape != (2000, 64) or f_te.shape != (800, 64) or f_tr.dtype != np.float32:
    failures.append(f"features: {f_tr.shape} {f_te.shape} {f_tr.dtype}, expected (2000, 64) and (800, 64) float32")
if y_tr.tolist() != tr_y.ravel().tolist() or y_te.tolist() != te_y.ravel().tolist() or y_tr.dtype != np.int64:
    failures.append("labels written by micle embed are not the data's labels in order")

scaler = StandardScaler().fit(f_tr)
clf = LogisticRegression(max_iter=10000).fit(scaler.transform(f_tr), y_tr)
sk_acc = float((clf.predict(scaler.transform(f_te)) == y_te).mean())
majority = float((y_te == 0).mean())
spread = float(np.abs(f_tr).max(axis=0).max() / max(np.abs(f_tr).max(axis=0).min(), 1e-30))
print(f"probe-vs-sklearn: random-init ResNet-18 features ({f_tr.shape[1]}-d, largest/smallest feature scale {spread:.0f}); "
      f"test accuracy: micle probe {micle_acc:.4f}, scikit-learn {sk_acc:.4f}, majority class {majority:.4f}")
if micle_acc < sk_acc - 0.01:
    failures.append(f"micle's probe ({micle_acc:.4f}) is more than 1 point below scikit-learn's ({sk_acc:.4f})")
if micle_acc <= majority + 0.02 or sk_acc <= majority + 0.02:
    failures.append(f"a probe does not beat the majority class ({majority:.4f}) by 2 points")
for f in failures:
    print("probe-vs-sklearn: FAIL:", f)
print("probe-vs-sklearn: ok" if not failures else "probe-vs-sklearn: failed")
sys.exit(1 if failures else 0)
