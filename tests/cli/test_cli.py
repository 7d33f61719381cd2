#!/usr/bin/python3
"""End-to-end checks of the `micle` trainer with small real runs (tiny ResNet-18, 16 px):
every subcommand on a CSV manifest of PNG files with patient ids, a MedMNIST .npz and the
IDX Fashion-MNIST; the JSON report's fields; an interrupted-and-resumed pretraining run
ending with the same weights as an uninterrupted one; bad input giving clear errors.
The library-only example (examples/pretrain_fit.cpp), given as a third argument, must
train bitwise the same weights as `micle pretrain` with the same settings.
Usage: test_cli.py MICLE_BINARY WORK_DIR [MICLE_PRETRAIN_FIT_BINARY]"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
from PIL import Image

micle, work = sys.argv[1], sys.argv[2]
example = sys.argv[3] if len(sys.argv) > 3 else None
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

# micle-gpu on a machine without a GPU: say so and stop (ctest reports the test skipped).
probe = subprocess.run([micle, "info"], capture_output=True, text=True)
if probe.returncode != 0 and "no CUDA device" in probe.stderr:
    print("cli: skipped: no CUDA device:", probe.stderr.strip().splitlines()[-1])
    sys.exit(0)
failures = []
passed = 0
MODEL = ["--arch", "resnet18", "--stem", "small", "--base-channels", "4", "--image-size", "16", "--workers", "2",
         "--precision", "fp32"]  # the same arithmetic on every CPU (auto is bf16 on AMX)


def run(*args, expect=0, env=None):
    r = subprocess.run([micle, *args], capture_output=True, text=True, env=None if env is None else {**os.environ, **env})
    if expect is not None and r.returncode != expect:
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
import interrupt  # noqa: E402  (tests/cli/interrupt.py)


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


def split_sizes(manifest):
    """{split: (images, patients)} as `micle check` reports them."""
    r = run("check", "--data", manifest)
    out = r.stdout + r.stderr
    return {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"^  (train|val|test): (\d+) images, (\d+) patients", out, re.M)}


CHEXPERT_FINDINGS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                     "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                     "Fracture", "Support Devices"]


def chest_xray_layouts():
    """A CheXpert-layout folder (train.csv + valid.csv, patientNNNNN/studyN/viewK_*.jpg, values
    1.0/0.0/-1.0/blank) and an NIH ChestX-ray14 one (Data_Entry_2017.csv, images/, test_list.txt)."""
    root = f"{work}/chexpert/CheXpert-v1.0-small"
    head = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_FINDINGS)
    values = ["1.0", "0.0", "-1.0", ""]
    for csv, first, count in [("train", 1, 24), ("valid", 64541, 6)]:
        rows = [head]
        for p in range(first, first + count):
            for study in range(1, 2 + p % 2):
                for view, kind in [(1, "Frontal"), (2, "Lateral")][: 1 + (p + study) % 2]:
                    path = f"CheXpert-v1.0-small/{csv}/patient{p:05d}/study{study}/view{view}_{kind.lower()}.jpg"
                    os.makedirs(os.path.dirname(f"{work}/chexpert/{path}"), exist_ok=True)
                    arr = (rng.random((20, 20)) * 60).astype(np.uint8)
                    arr[: 6 + (p % 3) * 4] += 120 * (p % 2)
                    Image.fromarray(arr, "L").save(f"{work}/chexpert/{path}")
                    labels = [values[(p * 7 + k * 3 + study) % 4] if csv == "train" else ["1.0", "0.0"][(p + k) % 2]
                              for k in range(14)]
                    rows.append(",".join([path, "Female", "60", kind, "AP" if kind == "Frontal" else ""] + labels))
        with open(f"{root}/{csv}.csv", "w") as f:
            f.write("\n".join(rows) + "\n")
    nih = f"{work}/nih"
    os.makedirs(f"{nih}/images")
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"]
    findings = ["Cardiomegaly", "Effusion", "Atelectasis|Effusion", "No Finding", "Edema", "Consolidation|Cardiomegaly"]
    for i in range(24):
        name = f"{i // 2 + 1:08d}_{i % 2:03d}.png"
        Image.fromarray((rng.random((20, 20)) * 200).astype(np.uint8), "L").save(f"{nih}/images/{name}")
        rows.append(f"{name},{findings[i % 6]},{i % 2},{i // 2 + 1},50,F,PA,2500,2048,0.168,0.168,")
    with open(f"{nih}/Data_Entry_2017.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(f"{nih}/test_list.txt", "w") as f:
        f.write("".join(f"{i // 2 + 1:08d}_{i % 2:03d}.png\n" for i in range(12, 24)))
    return f"{root}/train.csv", f"{nih}/Data_Entry_2017.csv"


def chest_xray_pipeline():
    chexpert, nih = chest_xray_layouts()
    spec = f"chexpert:{chexpert}"
    out = run("check", "--data", spec).stdout
    assert "labels (positive / negative / uncertain / missing; left out of loss and metrics):" in out, out
    assert re.search(r"^      Edema: \d+ / \d+ / \d+ / \d+; \d+ left out$", out, re.M), out
    assert "  test: " in out and "studies: " in out, out
    # MICLe with study bags (frontal + lateral of one visit), then fine-tuning on all 14
    # findings with uncertain and blank labels left out of the loss.
    r = run("pretrain", "--data", spec, "--pairs", "micle", "--bag", "study", "--out", f"{work}/p-cx", "--epochs", "1",
            "--batch-size", "4", "--augment", "chest_xray", *MODEL)
    assert " study bags, " in r.stderr, r.stderr
    assert json.load(open(f"{work}/p-cx/config.json"))["bag"] == "study"
    run("finetune", "--data", spec, "--labels", "all", "--init", f"{work}/p-cx", "--out", f"{work}/f-cx", "--epochs", "2",
        "--batch-size", "8")
    run("evaluate", "--data", spec, "--labels", "all", "--split", "test", "--model", f"{work}/f-cx", "--report",
        f"{work}/cx-report.json", "--predictions", f"{work}/cx-pred.csv")
    r = json.load(open(f"{work}/cx-report.json"))
    assert r["task"] == "multilabel" and r["class_names"] == CHEXPERT_FINDINGS and len(r["n_per_label"]) == 14, r
    assert all(n == r["n"] for n in r["n_per_label"]), r["n_per_label"]  # valid.csv: no uncertain or blank labels
    # The shifted-dataset protocol: the CheXpert model on NIH ChestX-ray14, labels by name.
    run("evaluate", "--data", f"nih:{nih}", "--split", "test", "--model", f"{work}/f-cx", "--report", f"{work}/nih-report.json",
        "--predictions", f"{work}/nih-pred.csv")
    r = json.load(open(f"{work}/nih-report.json"))
    assert r["labels_matched_by_name"] is True, r
    absent = ["No Finding", "Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion", "Pleural Other", "Fracture",
              "Support Devices"]
    assert r["labels_absent"] == absent, r["labels_absent"]
    for name, auc, n in zip(CHEXPERT_FINDINGS, r["auc_per_class"], r["n_per_label"]):
        assert (auc is None and n == 0) if name in absent else n == r["n"] == 12, (name, auc, n)
    effusion = CHEXPERT_FINDINGS.index("Pleural Effusion")  # NIH's Effusion
    assert r["positives_per_label"][effusion] == 4, r["positives_per_label"]
    defined = [a for a in r["auc_per_class"] if a is not None]
    assert abs(r["auc_macro"] - sum(defined) / len(defined)) < 1e-9, r
    # Predictions: an absent label's column is blank on every row.
    with open(f"{work}/nih-pred.csv") as f:
        rows = [line.rstrip("\n").split(",") for line in f]
    col = rows[0].index("label_Support Devices")
    assert all(row[col] == "" for row in rows[1:]) and len(rows) == 13, rows[:3]
    # Options for chest X-ray specs only, and bad values, are usage errors.
    r = run("check", "--data", f"{work}/csv/manifest.csv", "--views", "frontal", expect=2)
    assert "--labels and --views are for chest X-ray specs" in r.stderr, r.stderr
    r = run("check", "--data", spec, "--uncertain", "maybe", expect=2)
    assert "--uncertain must be ignore, ones or zeros, not 'maybe'" in r.stderr, r.stderr
    r = run("pretrain", "--data", f"nih:{nih}", "--pairs", "micle", "--bag", "study", "--out", f"{work}/p-nih", *MODEL, expect=None)
    assert r.returncode != 0 and "has no study ids, so bags can only be patients" in r.stderr, r.stderr


def csv_pipeline():
    # 24 patients of 1-3 images (48 images); the seeded patient-level split gives train
    # 18 patients, val 3, test 3 (`micle check`).
    sizes = split_sizes(f"{work}/csv/manifest.csv")
    assert sum(n for n, _ in sizes.values()) == 48 and sum(p for _, p in sizes.values()) == 24, sizes
    run("pretrain", "--data", f"{work}/csv/manifest.csv", "--pairs", "micle", "--out", f"{work}/p-csv", "--epochs", "2",
        "--batch-size", "4", "--augment", "chest_xray", *MODEL)
    r = run("finetune", "--data", f"{work}/csv/manifest.csv", "--init", f"{work}/p-csv", "--out", f"{work}/f-csv",
            "--label-fraction", "0.5", "--epochs", "2", "--batch-size", "8")
    ids = [int(x) for x in open(f"{work}/f-csv/label_ids.txt") if not x.startswith("#")]
    # Half the training patients, each with all of its 1-3 images: indices into the train
    # split, each once, as many as the run says it trained on.
    train_images, train_patients = sizes["train"]
    half = train_patients // 2
    assert len(set(ids)) == len(ids) and all(0 <= i < train_images for i in ids), ids
    assert half <= len(ids) <= 3 * half, (len(ids), half)
    assert f"fine-tuned on {len(ids)} labelled images (fraction 0.50)" in r.stdout, r.stdout
    run("evaluate", "--data", f"{work}/csv/manifest.csv", "--split", "test", "--model", f"{work}/f-csv", "--report",
        f"{work}/csv-report.json", "--patient-level")
    r = json.load(open(f"{work}/csv-report.json"))
    for key in ["task", "n", "accuracy", "auc_macro", "auc_per_class", "confusion_matrix", "patient_level"]:
        assert key in r, f"report lacks {key}"
    assert r["task"] == "multiclass" and len(r["auc_per_class"]) == 3 and len(r["confusion_matrix"]) == 3
    assert (r["n"], r["patient_level"]["n"]) == sizes["test"], (r["n"], r["patient_level"]["n"], sizes)
    assert sum(map(sum, r["confusion_matrix"])) == r["n"]
    assert r["class_names"] == ["effusion", "mass", "normal"], r["class_names"]
    run("plot", "--report", f"{work}/csv-report.json")
    run("plot", "--run", f"{work}/p-csv")
    for svg in [f"{work}/csv-report.roc.svg", f"{work}/p-csv/curves.svg"]:
        assert "<svg" in open(svg).read(), f"{svg} is not an SVG"


def npz_pipeline():
    run("pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/p-npz", "--epochs", "1", "--batch-size", "8",
        "--optimizer", "adamw", "--augment", "chest_xray", "--crop-min", "0.4", "--rotation", "10", "--jitter", "0.25", *MODEL)
    c = json.load(open(f"{work}/p-npz/config.json"))
    assert np.allclose([c["crop_area_min"], c["rotation_degrees"], c["jitter_strength"]], [0.4, 10, 0.25]), c
    run("finetune", "--data", f"{work}/tiny.npz", "--init", f"{work}/p-npz", "--out", f"{work}/f-npz", "--epochs", "1",
        "--batch-size", "16", "--linear-probe")
    run("evaluate", "--data", f"{work}/tiny.npz", "--model", f"{work}/f-npz", "--report", f"{work}/npz-report.json")
    r = json.load(open(f"{work}/npz-report.json"))
    assert r["task"] == "multilabel" and r["n"] == 20 and len(r["auc_per_class"]) == 3 and "confusion_matrix" not in r
    run("embed", "--data", f"{work}/tiny.npz", "--model", f"{work}/p-npz", "--out", f"{work}/npz-emb/test")
    f, y = np.load(f"{work}/npz-emb/test.features.npy"), np.load(f"{work}/npz-emb/test.labels.npy")
    assert f.shape == (20, 32) and f.dtype == np.float32 and np.isfinite(f).all(), (f.shape, f.dtype)
    assert y.tolist() == np.tile([[1, 0, 1], [0, 1, 0]], (10, 1)).tolist(), y


def idx_pipeline():
    # 24 steps on 256 images learn well above chance (10 balanced classes: accuracy 0.1 +-
    # 0.003 on 10000 images, AUC 0.5): measured accuracy 0.327-0.330, macro AUC 0.868-0.881
    # with oneDNN's AMX, AVX-512 and AVX2 kernels. A model that learned nothing (the batch
    # norm statistics of 4 steps of 64 gave accuracy 0.09, AUC 0.49) fails.
    run("finetune", "--data", "fashion-mnist", "--out", f"{work}/f-idx", "--max-samples", "256", "--epochs", "3",
        "--batch-size", "32", "--lr", "0.8", *MODEL)
    run("evaluate", "--data", "fashion-mnist", "--model", f"{work}/f-idx", "--report", f"{work}/idx-report.json",
        "--precision", "fp32")
    r = json.load(open(f"{work}/idx-report.json"))
    assert r["n"] == 10000 and len(r["confusion_matrix"]) == 10
    assert sum(map(sum, r["confusion_matrix"])) == 10000
    assert r["accuracy"] > 0.2 and r["auc_macro"] > 0.75, (r["accuracy"], r["auc_macro"])


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


def signal_stops_with_checkpoint():
    # 64 images in batches of 8: 8 steps an epoch, a checkpoint every 2 steps. The signal
    # comes after the first checkpoint (step 2); the runs are compared at epoch 4.
    args = ["pretrain", "--data", f"{work}/tiny.npz", "--epochs", "100", "--batch-size", "8", "--checkpoint-every", "2",
            *MODEL]
    run(*args, "--out", f"{work}/sig-straight", "--stop-after", "4")
    want = read_safetensors(f"{work}/sig-straight/ckpt-000004/model.safetensors")
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = f"{work}/sig-{sig.name}"
        code, err = interrupt.run_until_signal([micle, *args, "--out", out], None, out, [sig])
        assert code == interrupt.STOPPED_BY_SIGNAL, f"{sig.name}: exit code {code}:\n{err[-2000:]}"
        latest = interrupt.check_stopped_at_step(out, err, 8)
        step = interrupt.step_of(out, latest, 8)
        assert f"stopped by signal {int(sig)} ({sig.name}) at step {step}" in err, err[-2000:]
        assert 2 <= step < 32, f"{sig.name} arrived at step {step}, not within the 4 epochs compared"
        r = run(*args, "--out", out, "--resume", "--stop-after", "4")
        assert f"resuming {out}/{latest}" in r.stderr, r.stderr[-2000:]
        got = read_safetensors(f"{out}/ckpt-000004/model.safetensors")
        worst = interrupt.max_difference({k: v.numpy() for k, v in want.items()}, {k: v.numpy() for k, v in got.items()})
        assert worst <= 1e-5, f"{sig.name}: the resumed run's weights differ from the uninterrupted run's by {worst}"
        print(f"     {sig.name}: stopped at step {step}; resumed weights within {worst:.2g} of the uninterrupted run's")
    # A second signal while the first is pending ends the run at once, with the signal's
    # own status, and writes nothing: `latest` stays a periodic checkpoint (an even step).
    out = f"{work}/sig-twice"
    code, err = interrupt.run_until_signal([micle, *args, "--out", out], None, out, [signal.SIGINT, signal.SIGTERM])
    assert code == -signal.SIGTERM, f"exit code {code} after SIGINT then SIGTERM:\n{err[-2000:]}"
    assert "a second signal: stopping at once, without a checkpoint" in err, err[-2000:]
    latest = open(f"{out}/latest").read().strip()
    assert interrupt.step_of(out, latest, 8) % 2 == 0, latest
    assert os.path.exists(f"{out}/{latest}/state.safetensors"), latest


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
    r = run("embed", "--data", f"{work}/tiny.npz", "--model", f"{work}/nowhere", "--out", f"{work}/e", expect=1)
    assert "nowhere" in r.stderr, r.stderr
    r = run("embed", "--data", f"{work}/tiny.npz", "--out", f"{work}/e", expect=2)
    assert "--model is required" in r.stderr and "usage: micle embed" in r.stderr, r.stderr
    for cmd in ["pretrain", "finetune", "evaluate", "embed"]:
        assert "usage: micle " + cmd in run(cmd, "--help").stdout


def nan_stops():
    args = ["pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/nan", "--epochs", "3", "--batch-size", "8",
            "--optimizer", "sgd", *MODEL]
    run(*args, "--stop-after", "1")
    r = run(*args, "--resume", "--lr", "1e37", expect=3)  # diverges in epoch 2
    assert re.search(r"contrastive_learner: the loss is (NaN|\+inf|-inf) at step \d+; parameters were not updated",
                     r.stderr), r.stderr
    assert "last good checkpoint is " + f"{work}/nan/ckpt-000001" in r.stderr, r.stderr
    assert open(f"{work}/nan/latest").read().strip() == "ckpt-000001"
    run("finetune", "--data", f"{work}/tiny.npz", "--init", f"{work}/nan", "--out", f"{work}/after-nan", "--epochs", "1",
        "--batch-size", "16")  # the kept checkpoint is usable


def same_weights(file_a, file_b):
    a, b = read_safetensors(file_a), read_safetensors(file_b)
    assert a.keys() == b.keys(), "different tensors"
    for k in a:
        assert a[k].shape == b[k].shape and bool((a[k] == b[k]).all()), f"{k} differs"


def library_equals_cli():
    run("pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/lib-cli", "--epochs", "2", "--batch-size", "8",
        "--precision", "fp32",
        "--arch", "resnet18", "--stem", "small", "--base-channels", "4", "--image-size", "16")
    r = subprocess.run([example, f"{work}/tiny.npz", f"{work}/lib-example", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "step 5: loss" in r.stdout, r.stdout  # the example's own callback ran
    same_weights(f"{work}/lib-cli/ckpt-000002/model.safetensors", f"{work}/lib-example/ckpt-000002/model.safetensors")


def rgb_npz_defaults():
    # RetinaMNIST's layout: N x H x W x 3 uint8 images, N x 1 labels.
    np.savez_compressed(f"{work}/retina.npz",
                        train_images=rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8),
                        train_labels=rng.integers(0, 5, (32, 1), dtype=np.uint8),
                        val_images=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
                        val_labels=np.arange(8, dtype=np.uint8).reshape(8, 1) % 5)
    run("pretrain", "--data", f"{work}/retina.npz", "--out", f"{work}/retina", "--epochs", "1", "--batch-size", "8", *MODEL)
    assert read_safetensors(f"{work}/retina/ckpt-000001/model.safetensors")["conv1.weight"].shape[1] == 3
    r = run("pretrain", "--data", f"{work}/retina.npz", "--out", f"{work}/retina1", "--channels", "1", *MODEL, expect=1)
    assert "a model with 1 input channel(s) cannot read the images of" in r.stderr and "have 3 channels" in r.stderr, r.stderr
    run("finetune", "--data", f"{work}/retina.npz", "--init", f"{work}/retina", "--out", f"{work}/retina-ft", "--epochs", "1",
        "--batch-size", "8")


def checkpoints_and_validation():
    # Checkpoints every 2 steps, the newest 2 kept (and the best); validation on the val split
    # every epoch chooses `best`, and evaluate on that split agrees with what fit recorded.
    out = f"{work}/ft-val"
    run("finetune", "--data", f"{work}/csv/manifest.csv", "--out", out, "--epochs", "3", "--batch-size", "8",
        "--checkpoint-every", "2", "--keep-last", "2", "--val-every", "1", "--select", "best", *MODEL)
    epochs = [json.loads(x) for x in open(f"{out}/metrics.jsonl") if "epoch_end" in x]
    assert [e["epoch_end"] for e in epochs] == [1, 2, 3], epochs
    assert all(0 <= e["loader_wait_fraction"] <= 1 for e in epochs), epochs
    best = max(epochs, key=lambda e: (e["val_auc"], -e["epoch_end"]))
    best_name = open(f"{out}/best").read().strip()
    assert best_name == f"ckpt-{best['epoch_end']:06d}", (best_name, epochs)
    assert open(f"{out}/selected").read().strip() == best_name
    kept = sorted(d for d in os.listdir(out) if d.startswith("ckpt-"))
    assert len(kept) <= 3 and best_name in kept and "ckpt-000003" in kept, kept
    for e in epochs:
        if f"ckpt-{e['epoch_end']:06d}" not in kept:
            continue
        run("evaluate", "--data", f"{work}/csv/manifest.csv", "--split", "val", "--model",
            f"{out}/ckpt-{e['epoch_end']:06d}/model.safetensors", "--report", f"{work}/val-{e['epoch_end']}.json")
        r = json.load(open(f"{work}/val-{e['epoch_end']}.json"))
        assert abs(r["accuracy"] - e["val_accuracy"]) < 1e-9 and abs(r["auc_macro"] - e["val_auc"]) < 1e-9, (r, e)
    r = run("evaluate", "--data", f"{work}/csv/manifest.csv", "--split", "val", "--model", out, "--report", f"{work}/sel.json")
    assert json.load(open(f"{work}/sel.json"))["model"].endswith(f"{best_name}/model.safetensors")


def errors_and_exit_codes():
    # An invalid argument inside an op is an error (exit 1) with its message, not "diverged" (3).
    r = run("pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/bad-t", "--temperature", "0", "--epochs", "1",
            "--batch-size", "8", *MODEL, expect=1)
    assert "temperature" in r.stderr, r.stderr
    for knob, value, name in [("--crop-min", "0", "crop_area_min"), ("--rotation", "200", "rotation_degrees"),
                              ("--jitter", "-1", "jitter_strength")]:
        r = run("pretrain", "--data", f"{work}/tiny.npz", "--out", f"{work}/bad-aug", knob, value, *MODEL, expect=1)
        assert name in r.stderr, r.stderr
    r = run("finetune", "--data", "fashion-mnist", "--out", f"{work}/nv", "--val-every", "1", *MODEL, expect=2)
    assert "--val-every needs a val split" in r.stderr, r.stderr


def check_lists_every_problem():
    os.makedirs(f"{work}/chk/img")
    rows = ["path,patient_id,label,split"]
    for p in range(6):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8), "L").save(f"{work}/chk/img/{p}.png")
        rows.append(f"img/{p}.png,P{p},{p % 2},{['train', 'train', 'train', 'val', 'test', 'test'][p]}")
    rows.append("img/0.png,P0,0,test")  # patient P0 in train and test
    for k in (1, 4):  # two truncated images, one per split
        data = open(f"{work}/chk/img/{k}.png", "rb").read()
        open(f"{work}/chk/img/{k}.png", "wb").write(data[:len(data) // 2])
    open(f"{work}/chk/m.csv", "w").write("\n".join(rows) + "\n")
    r = run("check", "--data", f"{work}/chk/m.csv", expect=1)
    out = r.stdout
    assert "m.csv:3 (" in out and "m.csv:6 (" in out and out.count("unreadable: ") == 2, out  # both, with their lines
    assert "train: 3 images, 3 patients, 1 unreadable" in out, out
    assert "LEAK: 1 patients have images in both train and test" in out, out
    assert "2 unreadable images" in out, out
    r = run("check", "--data", f"{work}/tiny.npz")
    assert "every image decodes" in r.stdout and "train: 64 images" in r.stdout and "test: 20 images" in r.stdout, r.stdout


def prepared_dataset():
    """`micle prepare`: the prepared file trains to the weights the raw files train to (the
    images are within --max-side, so every view is the same), `check` reports the same
    splits from it, an unreadable image stops it with its manifest line and no file, and a
    corrupt prepared file is refused naming it."""
    m = f"{work}/csv/manifest.csv"
    r = run("prepare", "--data", m, "--out", f"{work}/prep/csv.npz", "--max-side", "64", expect=1)  # no such folder
    assert "prep/csv.npz" in r.stderr, r.stderr
    os.makedirs(f"{work}/prep")
    r = run("prepare", "--data", m, "--out", f"{work}/prep/csv.npz", "--max-side", "64", "--workers", "3")
    assert "48 images (0 shrunk" in r.stdout, r.stdout
    assert split_sizes(f"{work}/prep/csv.npz") == split_sizes(m)
    for data, out in [(m, "raw"), (f"{work}/prep/csv.npz", "prep")]:
        run("pretrain", "--data", data, "--pairs", "micle", "--out", f"{work}/prep/{out}", "--epochs", "1", "--batch-size", "4",
            "--augment", "chest_xray", *MODEL)
    same_weights(f"{work}/prep/raw/ckpt-000001/model.safetensors", f"{work}/prep/prep/ckpt-000001/model.safetensors")
    last = [json.loads(x) for x in open(f"{work}/prep/prep/metrics.jsonl") if "epoch_end" in x][-1]
    assert 0 <= last["loader_wait_fraction"] <= 1, last
    run("finetune", "--data", f"{work}/prep/csv.npz", "--init", f"{work}/prep/prep", "--out", f"{work}/prep/f", "--epochs", "1",
        "--batch-size", "8")
    run("evaluate", "--data", f"{work}/prep/csv.npz", "--model", f"{work}/prep/f", "--report", f"{work}/prep/r.json")
    assert json.load(open(f"{work}/prep/r.json"))["n"] == split_sizes(m)["test"][0]
    # A MedMNIST file: its splits kept, each record its own patient.
    run("prepare", "--data", f"{work}/tiny.npz", "--out", f"{work}/prep/tiny.npz")
    r = run("check", "--data", f"{work}/prep/tiny.npz")
    assert "train: 64 images, 64 patients" in r.stdout and "test: 20 images" in r.stdout, r.stdout
    assert "(each record is its own patient)" in r.stdout and "every image decodes" in r.stdout, r.stdout
    # A manifest with a leak: the prepared file shows it as the manifest does.
    shutil.copytree(f"{work}/chk", f"{work}/prep/chk")
    rows = [x for x in open(f"{work}/prep/chk/m.csv").read().splitlines() if not x.startswith(("img/1.png", "img/4.png"))]
    open(f"{work}/prep/chk/ok.csv", "w").write("\n".join(rows) + "\n")
    run("prepare", "--data", f"{work}/prep/chk/ok.csv", "--out", f"{work}/prep/leak.npz")
    assert "LEAK: 1 patients have images in both train and test" in run("check", "--data", f"{work}/prep/leak.npz", expect=1).stdout
    # An unreadable image: the error names its manifest line, and nothing is written.
    r = run("prepare", "--data", f"{work}/prep/chk/m.csv", "--out", f"{work}/prep/bad.npz", expect=1)
    assert "m.csv:3 (" in r.stderr, r.stderr
    assert not [x for x in os.listdir(f"{work}/prep") if "bad.npz" in x], os.listdir(f"{work}/prep")
    # A truncated prepared file: refused, naming it.
    data = open(f"{work}/prep/csv.npz", "rb").read()
    open(f"{work}/prep/cut.npz", "wb").write(data[:len(data) * 2 // 3])
    for cmd in (["check", "--data", f"{work}/prep/cut.npz"],
                ["pretrain", "--data", f"{work}/prep/cut.npz", "--out", f"{work}/prep/cut-run", "--epochs", "1", *MODEL]):
        r = run(*cmd, expect=1)
        assert "cut.npz" in r.stderr + r.stdout and "error" in r.stderr, r.stderr + r.stdout


RSCRIPT = shutil.which("Rscript")
PROC_ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train", "proc_oracle.R")


def proc_oracle(y, s1, s2, r1, r2):
    """R's pROC and stats on paired scores (tests/train/proc_oracle.R): {name: value}."""
    assert RSCRIPT, "Rscript not found: run scripts/setup (r-base-core, r-cran-proc)"
    path = f"{work}/oracle.csv"
    with open(path, "w") as f:
        f.write("y,s1,s2,r1,r2\n")
        for row in zip(y, s1, s2, r1, r2):
            f.write(",".join(repr(float(v)) if i in (1, 2) else str(int(v)) for i, v in enumerate(row)) + "\n")
    out = subprocess.run([RSCRIPT, PROC_ORACLE, path], capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def read_predictions(path, k):
    rows = open(path).read().splitlines()
    head = rows[0].split(",")
    assert head[:4] == ["index", "source", "patient", "label"] and len(head) == 4 + k, head
    assert all(h.startswith("score_") for h in head[4:]), head
    body = [r.rsplit(",", k + 1) for r in rows[1:]]  # source names may hold commas (quoted)
    labels = np.array([int(b[1]) for b in body])
    scores = np.array([[float(v) for v in b[2:]] for b in body])
    return labels, scores


def intervals_and_comparison():
    """evaluate's 95% intervals and compare's paired tests equal R's pROC and mcnemar.test
    on the predictions CSVs of real runs (Fashion-MNIST's 10000 test images, two models)."""
    run("finetune", "--data", "fashion-mnist", "--out", f"{work}/f-idx2", "--max-samples", "256", "--epochs", "2",
        "--batch-size", "32", "--lr", "0.5", "--seed", "1", *MODEL)
    reports = []
    for name in ["f-idx", "f-idx2"]:
        r = run("evaluate", "--data", "fashion-mnist", "--model", f"{work}/{name}", "--report", f"{work}/{name}.json",
                "--predictions", f"{work}/{name}.csv", "--precision", "fp32")
        assert "macro AUC" in r.stdout and "[" in r.stdout and "DeLong" in r.stdout, r.stdout
        reports.append(json.load(open(f"{work}/{name}.json")))
    ya, sa = read_predictions(f"{work}/f-idx.csv", 10)
    yb, sb = read_predictions(f"{work}/f-idx2.csv", 10)
    assert len(ya) == 10000 and (ya == yb).all()
    r = run("compare", "--data", "fashion-mnist", "--model", f"{work}/f-idx", "--model", f"{work}/f-idx2", "--report",
            f"{work}/cmp.json", "--precision", "fp32")
    assert "macro AUC" in r.stdout and "McNemar" in r.stdout and "DeLong, paired" in r.stdout, r.stdout
    cmp = json.load(open(f"{work}/cmp.json"))
    ra, rb = sa.argmax(1) == ya, sb.argmax(1) == yb
    assert abs(reports[0]["accuracy"] - ra.mean()) < 1e-12
    for c in [0, 3, 9]:
        o = proc_oracle(ya == c, sa[:, c], sb[:, c], ra, rb)
        for rep, k in [(reports[0], "1"), (reports[1], "2")]:
            lo, hi = rep["auc_per_class_ci95"][c]
            assert abs(rep["auc_per_class"][c] - o["auc" + k]) < 1e-6 and abs(lo - o["lo" + k]) < 1e-6 and abs(hi - o["hi" + k]) < 1e-6, (c, rep["auc_per_class_ci95"][c], o)
        d = cmp["auc_per_class"][c]
        assert abs(d["statistic"] - o["z"]) < 1e-6 and abs(d["p"] - o["p"]) < 1e-6, (c, d, o)
        assert abs(d["ci95"][0] - o["diff_lo"]) < 1e-6 and abs(d["ci95"][1] - o["diff_hi"]) < 1e-6, (c, d, o)
    m = cmp["accuracy"]["mcnemar"]
    assert (m["a_right_b_wrong"], m["a_wrong_b_right"]) == (int((ra & ~rb).sum()), int((~ra & rb).sum())), m
    assert abs(m["statistic"] - o["mcnemar"]) < 1e-6 and abs(m["p"] - o["mcnemar_p"]) < 1e-6, (m, o)
    lo, hi = reports[0]["accuracy_ci95"]
    assert abs(lo - o["wilson_lo"]) < 1e-6 and abs(hi - o["wilson_hi"]) < 1e-6, (reports[0]["accuracy_ci95"], o)
    lo, hi = reports[0]["auc_macro_ci95"]
    assert lo < reports[0]["auc_macro"] < hi and hi - lo < 0.05, reports[0]["auc_macro_ci95"]
    # Under --patient-level: a seeded bootstrap over patients, reproducible, at both levels.
    args = ["--data", f"{work}/csv/manifest.csv", "--model", f"{work}/f-csv", "--patient-level", "--bootstrap", "300"]
    run("evaluate", *args, "--report", f"{work}/b1.json", "--seed", "5")
    run("evaluate", *args, "--report", f"{work}/b2.json", "--seed", "5")
    b1, b2 = json.load(open(f"{work}/b1.json")), json.load(open(f"{work}/b2.json"))
    for key in ["accuracy_ci95", "auc_macro_ci95", "auc_per_class_ci95"]:
        assert b1[key] == b2[key] and b1["patient_level"][key] == b2["patient_level"][key], key
    assert b1["ci_method"].startswith("bootstrap over patients") and b1["bootstrap_replicates"] == 300, b1
    assert b1["bootstrap_patients"] == b1["patient_level"]["n"], b1
    r = run("compare", *args[:2], "--model", f"{work}/f-csv", "--model", f"{work}/f-csv", "--patient-level",
            "--bootstrap", "200", "--report", f"{work}/self.json")
    s = json.load(open(f"{work}/self.json"))
    assert s["auc_macro"]["difference"] == 0 and s["patient_level"]["auc_macro"]["ci95"] == [0, 0], s
    r = run("evaluate", "--data", "fashion-mnist", "--model", f"{work}/f-idx", "--report", "x.json", "--bootstrap", "9", expect=2)
    assert "give --patient-level too" in r.stderr, r.stderr
    r = run("compare", "--data", "fashion-mnist", "--model", f"{work}/f-idx", "--report", "x.json", expect=2)
    assert "give --model twice" in r.stderr, r.stderr


def leaks_fail_check():
    """A patient in train and test: `micle check` exits 1 naming its images, 0 with
    --allow-leaks; finetune and evaluate warn once."""
    os.makedirs(f"{work}/leak/img")
    rows = ["path,patient_id,label,split"]
    for p in range(8):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8), "L").save(f"{work}/leak/img/{p}.png")
        split = (["train"] * 4 + ["val", "test", "test", "test"])[p]
        rows.append(f"img/{p}.png,P{p % 6},{p % 2},{split}")
    open(f"{work}/leak/m.csv", "w").write("\n".join(rows) + "\n")  # P0 and P1 in train and test
    r = run("check", "--data", f"{work}/leak/m.csv", expect=1)
    assert "LEAK: 2 patients have images in both train and test" in r.stdout, r.stdout
    assert re.search(r"one patient: \S*m\.csv:2 \(\S*img/0\.png\) in train, \S*m\.csv:8 \(\S*img/6\.png\) in test", r.stdout), r.stdout
    assert "--allow-leaks" in r.stderr and "every image decodes" in r.stdout, r.stderr
    r = run("check", "--data", f"{work}/leak/m.csv", "--allow-leaks")
    assert "LEAK: 2 patients" in r.stdout, r.stdout
    r = run("finetune", "--data", f"{work}/leak/m.csv", "--out", f"{work}/leak/f", "--epochs", "1", "--batch-size", "4", *MODEL)
    assert r.stderr.count("warning: 2 patients of") == 1 and "two splits" in r.stderr, r.stderr
    r = run("evaluate", "--data", f"{work}/leak/m.csv", "--model", f"{work}/leak/f", "--report", f"{work}/leak/r.json")
    assert r.stderr.count("warning: 2 patients of") == 1, r.stderr
    r = run("check", "--data", f"{work}/csv/manifest.csv")  # the seeded patient split: no leak
    assert "no patient is in two splits" in r.stdout, r.stdout


def info_names_backend():
    out = run("info").stdout
    assert out.startswith("micle 0.") and "\nbackend: " in out, out
    if "backend: cudnn" in out:  # micle-gpu: the precision is the user's choice
        assert "bf16 mixed precision" in run("info", "--precision", "bf16").stdout
        assert "strict fp32" in run("info", "--precision", "fp32").stdout
        r = run("info", "--conv-algorithm", "direct", expect=2)  # cuDNN picks the GPU's algorithms
        assert "--conv-algorithm is for the CPU trainer" in r.stderr, r.stderr
    else:  # the CPU trainer: bf16 where it pays (AMX), a clear refusal elsewhere
        r = run("info", "--device", "0", expect=2)
        assert "micle-gpu" in r.stderr, r.stderr
        amx = "backend: onednn (AVX512_CORE_AMX)" in out
        # auto (the default) is the faster mode: bf16 mixed precision with AMX, fp32 elsewhere.
        assert ("bf16 mixed precision" in out) == amx and ("fp32" in out) != amx, out
        r = run("info", "--precision", "bf16", expect=None)
        if amx:
            assert r.returncode == 0 and "bf16 mixed precision" in r.stdout, r.stdout + r.stderr
            assert "Winograd" not in r.stdout, r.stdout  # Winograd is for fp32 convolutions
        else:
            assert r.returncode == 2, r.returncode
            assert ("needs a CPU with AVX512-BF16 or AMX" in r.stderr or "bf16 without AMX" in r.stderr), r.stderr
        # oneDNN held to AVX512-BF16 without AMX (as on a Cooper Lake or Zen 4): auto is fp32,
        # and bf16 is refused with the measured reason (or, below AVX512-BF16, the missing kernels).
        capped = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}
        assert "bf16" not in run("info", env=capped).stdout
        r = run("info", "--precision", "bf16", expect=2, env=capped)
        if "backend: onednn (AVX512_CORE_BF16)" in run("info", env=capped).stdout:
            assert "bf16 without AMX, where bf16 mixed precision trains 2-3x slower than fp32" in r.stderr, r.stderr
        else:
            assert "needs a CPU with AVX512-BF16 or AMX, but oneDNN runs" in r.stderr, r.stderr
        # oneDNN held to AVX-512 without bf16 (as on a CPU without it): refused, and why.
        r = run("info", "--precision", "bf16", expect=2, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})
        assert "needs a CPU with AVX512-BF16 or AMX, but oneDNN runs" in r.stderr, r.stderr
        # fp32 3x3 convolutions run Winograd kernels where oneDNN has them (AVX-512), and the
        # direct kernels everywhere with --conv-algorithm direct or below AVX-512
        fp32 = run("info", "--precision", "fp32").stdout
        assert "fp32" in fp32 and "bf16" not in fp32, fp32
        assert ("Winograd 3x3 convolutions" in fp32) == ("backend: onednn (AVX512" in fp32), fp32
        assert "Winograd" not in run("info", "--precision", "fp32", "--conv-algorithm", "direct").stdout
        assert "Winograd" not in run("info", env={"ONEDNN_MAX_CPU_ISA": "AVX2"}).stdout
        r = run("info", "--conv-algorithm", "fft", expect=2)
        assert "--conv-algorithm must be auto or direct, got 'fft'" in r.stderr, r.stderr
    r = run("info", "--precision", "fp16", expect=2)
    assert "--precision must be auto, tf32, fp32 or bf16" in r.stderr, r.stderr


check("CSV manifest: MICLe pretrain, fine-tune on 50% of labels, patient-level evaluation", csv_pipeline)
check("CheXpert and NIH ChestX-ray14 as shipped: masked labels, study bags, CheXpert model evaluated on NIH by name",
      chest_xray_pipeline)
check("MedMNIST .npz (multi-label): SimCLR/AdamW pretrain, linear probe, evaluation", npz_pipeline)
check("IDX Fashion-MNIST: supervised fine-tuning from random init, evaluation", idx_pipeline)
check("pretraining interrupted after epoch 1 and resumed ends with the same weights", exact_resume)
check("SIGTERM or SIGINT: the step finishes, a checkpoint there, exit 75; --resume ends as an uninterrupted run",
      signal_stops_with_checkpoint)
check("bad input: missing files, unknown options, impossible splits", bad_input)
check("a diverging run stops with exit code 3 and keeps its last good checkpoint", nan_stops)
check("info names the version and the backend", info_names_backend)
check("check lists every unreadable image with its manifest line, and patients in two splits", check_lists_every_problem)
check("prepare: the prepared file trains as the raw files do, keeps splits and leaks, refuses corrupt input",
      prepared_dataset)
check("a 3-channel .npz trains with default flags; --channels 1 on it is refused clearly", rgb_npz_defaults)
check("step checkpoints, keep-last, best by val AUC; validation agrees with evaluate", checkpoints_and_validation)
check("an invalid op argument exits 1, a missing val split is a usage error", errors_and_exit_codes)
check("evaluate's intervals and compare's paired tests equal R's pROC on real predictions; patient bootstrap",
      intervals_and_comparison)
check("a patient in two splits fails `micle check` (not with --allow-leaks); finetune and evaluate warn",
      leaks_fail_check)
if example:
    check("the library-only example trains bitwise the weights `micle pretrain` trains", library_equals_cli)
print(f"cli: {passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
