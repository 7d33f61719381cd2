#!/usr/bin/python3
"""End-to-end checks of the `micle` trainer with small real runs (tiny ResNet-18, 16 px):
every subcommand on a CSV manifest of PNG files with patient ids, a MedMNIST .npz and the
IDX Fashion-MNIST; the JSON report's fields; an interrupted-and-resumed pretraining run
ending with the same weights as an uninterrupted one; bad input giving clear errors.
Usage: test_cli.py MICLE_BINARY WORK_DIR"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

micle, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

# micle-gpu on a machine without a GPU: say so and stop (ctest reports the test skipped).
probe = subprocess.run([micle, "info"], capture_output=True, text=True)
if probe.returncode != 0 and "no CUDA device" in probe.stderr:
    print("cli: skipped: no CUDA device:", probe.stderr.strip().splitlines()[-1])
    sys.exit(0)
failures = []
passed = 0
MODEL = ["--arch", "resnet18", "--stem", "small", "--base-channels", "4", "--image-size", "16", "--workers", "2"]


def run(*args, expect=0):
    r = subprocess.run([micle, *args], capture_output=True, text=True)
    if r.returncode != expect:
        raise AssertionError(f"micle {' '.join(args)} exited {r.returncode} (expected {expect}):\n{r.stderr[-2000:]}")
    return r


def check(name, fn):
    global passed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure
        failures.append(name)
        print(f"FAIL {name}: {e}")


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from torchvision_interop import read_safetensors  # noqa: E402  (the same reader, no torch needed at import)


# A CSV dataset: 24 patients with 1-3 PNG images each, 3 classes, some 16-bit.
rng = np.random.default_rng(0)
os.makedirs(f"{work}/csv/img")
rows = ["path,patient_id,label"]
for p in range(24):
    label = p % 3
    for k in range(1 + p % 3):
        arr = (rng.random((20, 20)) * 60).astype(np.uint8)
        arr[label * 6:label * 6 + 6, :] += 150
        name = f"img/p{p}_{k}.png"
        if p % 4 == 0:
            Image.fromarray(arr.astype(np.uint16) * 257, "I;16").save(f"{work}/csv/{name}")
        else:
            Image.fromarray(arr, "L").save(f"{work}/csv/{name}")
        rows.append(f"{name},patient{p},{['normal', 'effusion', 'mass'][label]}")
with open(f"{work}/csv/manifest.csv", "w") as f:
    f.write("\n".join(rows) + "\n")
# A MedMNIST-layout multi-label .npz
np.savez_compressed(f"{work}/tiny.npz",
                    train_images=rng.integers(0, 256, (64, 16, 16), dtype=np.uint8),
                    train_labels=rng.integers(0, 2, (64, 3), dtype=np.uint8),
                    test_images=rng.integers(0, 256, (20, 16, 16), dtype=np.uint8),
                    test_labels=np.tile(np.array([[1, 0, 1], [0, 1, 0]], np.uint8), (10, 1)))


def csv_pipeline():
    run("pretrain", "--data", f"{work}/csv/manifest.csv", "--pairs", "micle", "--out", f"{work}/p-csv", "--epochs", "2",
        "--batch-size", "4", "--augment", "chest_xray", *MODEL)
    run("finetune", "--data", f"{work}/csv/manifest.csv", "--init", f"{work}/p-csv", "--out", f"{work}/f-csv",
        "--label-fraction", "0.5", "--epochs", "2", "--batch-size", "8")
    ids = [int(x) for x in open(f"{work}/f-csv/label_ids.txt") if not x.startswith("#")]
    assert 0 < len(ids), "no labelled ids written"
    run("evaluate", "--data", f"{work}/csv/manifest.csv", "--split", "test", "--model", f"{work}/f-csv", "--report",
        f"{work}/csv-report.json", "--patient-level")
    r = json.load(open(f"{work}/csv-report.json"))
    for key in ["task", "n", "accuracy", "auc_macro", "auc_per_class", "confusion_matrix", "patient_level"]:
        assert key in r, f"report lacks {key}"
    assert r["task"] == "multiclass" and len(r["auc_per_class"]) == 3 and len(r["confusion_matrix"]) == 3
    assert sum(map(sum, r["confusion_matrix"])) == r["n"]
    assert r["patient_level"]["n"] <= r["n"]
    assert r["class_names"] == ["effusion", "mass", "normal"], r["class_names"]
    run("plot", "--report", f"{work}/csv-report.json")
    run("plot", "--run", f"{work}/p-csv")
    for svg in [f"{work}/csv-report.roc.svg", f"{work}/p-csv/curves.svg"]:
        assert "<svg" in open(svg).read(), f"{svg} is not an SVG"


def npz_pipeline():
    run("pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/p-npz", "--epochs", "1", "--batch-size", "8",
        "--optimizer", "adamw", *MODEL)
    run("finetune", "--data", f"{work}/tiny.npz", "--init", f"{work}/p-npz", "--out", f"{work}/f-npz", "--epochs", "1",
        "--batch-size", "16", "--linear-probe")
    run("evaluate", "--data", f"{work}/tiny.npz", "--model", f"{work}/f-npz", "--report", f"{work}/npz-report.json")
    r = json.load(open(f"{work}/npz-report.json"))
    assert r["task"] == "multilabel" and r["n"] == 20 and len(r["auc_per_class"]) == 3 and "confusion_matrix" not in r


def idx_pipeline():
    run("finetune", "--data", "fashion-mnist", "--out", f"{work}/f-idx", "--max-samples", "256", "--epochs", "1",
        "--batch-size", "64", *MODEL)
    run("evaluate", "--data", "fashion-mnist", "--model", f"{work}/f-idx", "--report", f"{work}/idx-report.json")
    r = json.load(open(f"{work}/idx-report.json"))
    assert r["n"] == 10000 and len(r["confusion_matrix"]) == 10


def exact_resume():
    args = ["pretrain", "--data", f"{work}/csv/manifest.csv", "--pairs", "simclr", "--batch-size", "4", *MODEL]
    run(*args, "--out", f"{work}/straight", "--epochs", "3")
    run(*args, "--out", f"{work}/resumed", "--epochs", "3", "--stop-after", "1")
    assert open(f"{work}/resumed/latest").read().strip() == "ckpt-000001"
    run(*args, "--out", f"{work}/resumed", "--epochs", "3", "--resume")
    a = read_safetensors(f"{work}/straight/ckpt-000003/model.safetensors")
    b = read_safetensors(f"{work}/resumed/ckpt-000003/model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)
    assert worst <= 1e-5, f"resumed weights differ by {worst}"
    sa = read_safetensors(f"{work}/straight/ckpt-000003/state.safetensors")
    sb = read_safetensors(f"{work}/resumed/ckpt-000003/state.safetensors")
    assert max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa) <= 1e-5, "optimizer state differs"


def bad_input():
    r = run("pretrain", "--data", f"{work}/missing.csv", "--out", f"{work}/x", *MODEL, expect=1)
    assert "missing.csv" in r.stderr, r.stderr
    r = run("pretrain", "--data", f"{work}/csv/manifest.csv", "--out", f"{work}/x", "--bogus", "1", expect=2)
    assert "unknown option --bogus" in r.stderr and "usage: micle pretrain" in r.stderr
    r = run("evaluate", "--data", "fashion-mnist", "--split", "val", "--model", f"{work}/f-idx", "--report", "x.json",
            expect=2)
    assert "train and test splits only" in r.stderr
    r = run("finetune", "--data", f"{work}/tiny.npz", "--init", f"{work}/nowhere", "--out", f"{work}/y", expect=1)
    assert "nowhere" in r.stderr
    for cmd in ["pretrain", "finetune", "evaluate"]:
        assert "usage: micle " + cmd in run(cmd, "--help").stdout


def nan_stops():
    args = ["pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/nan", "--epochs", "3", "--batch-size", "8",
            "--optimizer", "sgd", *MODEL]
    run(*args, "--stop-after", "1")
    r = run(*args, "--resume", "--lr", "1e37", expect=3)  # diverges in epoch 2
    assert "the loss is NaN" in r.stderr or "inf" in r.stderr, r.stderr
    assert "last good checkpoint is " + f"{work}/nan/ckpt-000001" in r.stderr, r.stderr
    assert open(f"{work}/nan/latest").read().strip() == "ckpt-000001"
    run("finetune", "--data", f"{work}/tiny.npz", "--init", f"{work}/nan", "--out", f"{work}/after-nan", "--epochs", "1",
        "--batch-size", "16")  # the kept checkpoint is usable


def info_names_backend():
    out = run("info").stdout
    assert out.startswith("micle 0.") and "\nbackend: " in out, out
    if "backend: cudnn" in out:  # micle-gpu: the precision is the user's choice
        assert "bf16 mixed precision" in run("info", "--precision", "bf16").stdout
        assert "strict fp32" in run("info", "--precision", "fp32").stdout
    else:  # the CPU trainer says where those options belong
        r = run("info", "--precision", "bf16", expect=2)
        assert "micle-gpu" in r.stderr, r.stderr
    r = run("info", "--precision", "fp16", expect=2)
    assert "--precision must be tf32, fp32 or bf16" in r.stderr, r.stderr


check("CSV manifest: MICLe pretrain, fine-tune on 50% of labels, patient-level evaluation", csv_pipeline)
check("MedMNIST .npz (multi-label): SimCLR/AdamW pretrain, linear probe, evaluation", npz_pipeline)
check("IDX Fashion-MNIST: supervised fine-tuning from random init, evaluation", idx_pipeline)
check("pretraining interrupted after epoch 1 and resumed ends with the same weights", exact_resume)
check("bad input: missing files, unknown options, impossible splits", bad_input)
check("a diverging run stops with exit code 3 and keeps its last good checkpoint", nan_stops)
check("info names the version and the backend", info_names_backend)
print(f"cli: {passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
