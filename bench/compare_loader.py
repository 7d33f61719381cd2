#!/usr/bin/env python3
"""micle's data pipeline next to torchvision's on the same files, in one command.

    bench/compare_loader.py BUILD [--data MANIFEST.csv] [--workers 1,2] [--preset chest_xray]
                            [--size 224] [--images 32] [--seconds 3] [--max-side 512]

Both sides decode each image once per sample and make two augmented views of it (the
usual SimCLR loader): micle with bench_loader (augmented_views + prefetch_loader, what
train::fit runs, on W threads), torchvision with a DataLoader on W worker processes whose
dataset opens the file once (PIL; 16-bit PNG and DICOM as float tensors) and applies the
preset's transforms twice (RandomResizedCrop, flip, colour jitter, rotation or blur as in
micle's preset). Each row runs --rounds rounds, alternating which side goes first; the
table gives the median views/s of each side and the median of the rounds' own ratios
micle / torchvision, with their range.

Without --data it writes into a temporary folder a deterministic set of each kind real
scans come in, with noise so that they compress like scans: 1024x1024 grey PNG, 2500x3000
grey JPEG (MIMIC-CXR-JPG's size), 2048x2048 16-bit PNG, 2048x2048 16-bit DICOM and 600x450
RGB JPEG. With --data it runs a user's own CSV manifest (path, patient_id, label columns).

Each set is also prepared (`micle prepare --max-side N`, timed) and micle's rows reading the
prepared file stand next to torchvision reading the raw files: what a user gains by
preparing once. --max-side 0 leaves them out.

Runs under the benchmark virtual environment (bench/pytorch_env.sh: PyTorch, torchvision,
pydicom from PyPI); it re-executes itself there when started with another python.
"""
import argparse
import csv
import json
import os
import subprocess
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def venv_python():
    env = dict(os.environ)
    env.setdefault("MICLE_BENCH_PIP", "torch torchvision lightly pydicom")
    return subprocess.run([os.path.join(HERE, "pytorch_env.sh")], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def ensure_venv():
    try:
        import torch, torchvision, pydicom  # noqa: F401
    except ImportError:
        py = venv_python()
        if subprocess.run([py, "-c", "import pydicom"], capture_output=True).returncode != 0:  # a venv made before
            subprocess.run([os.path.join(os.path.dirname(py), "pip"), "install", "--quiet", "pydicom"], check=True)
        os.execv(py, [py] + sys.argv)


# ---------------------------------------------------------------- the generated sets

def scan_like(rng, h, w, channels=1, bits=8):
    """Smooth anatomy-like structure plus sensor noise, as uint8 or uint16."""
    import numpy as np
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    phase = rng.uniform(0, 6.28, size=4).astype(np.float32)
    base = 0.5 + 0.22 * np.sin(7 * x + phase[0]) * np.cos(5 * y + phase[1]) + 0.12 * np.sin(23 * (x + y) + phase[2])
    base -= 0.25 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    planes = []
    for c in range(channels):
        noise = rng.normal(0, 0.015, size=(h, w)).astype(np.float32)
        planes.append(np.clip(base + 0.05 * c + noise, 0, 1))
    img = np.stack(planes, axis=-1) if channels > 1 else planes[0]
    top = 65535 if bits == 16 else 255
    return (img * top + 0.5).astype(np.uint16 if bits == 16 else np.uint8)


def write_dicom(path, pixels, patient):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = patient, "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    try:
        ds.save_as(path, enforce_file_format=True)  # pydicom 3
    except TypeError:
        ds.save_as(path, write_like_original=False)  # pydicom 2


SETS = [  # name, height, width, channels, bits, format
    ("png_1024_grey", 1024, 1024, 1, 8, "png"),
    ("jpeg_3000x2500_grey", 3000, 2500, 1, 8, "jpg"),
    ("png16_2048_grey", 2048, 2048, 1, 16, "png"),
    ("dicom16_2048_grey", 2048, 2048, 1, 16, "dcm"),
    ("jpeg_450x600_rgb", 450, 600, 3, 8, "jpg"),
]


def generate(root, images):
    import numpy as np
    from PIL import Image
    manifests = []
    for name, h, w, c, bits, fmt in SETS:
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(sum(map(ord, name)))  # deterministic per set
        rows = []
        for i in range(images):
            px = scan_like(rng, h, w, c, bits)
            path = os.path.join(folder, f"{i:04d}.{fmt}")
            if fmt == "png":
                Image.fromarray(px).save(path)  # uint16 arrays become 16-bit PNGs (mode I;16)
            elif fmt == "jpg":
                Image.fromarray(px).save(path, quality=95)
            else:
                write_dicom(path, px, f"P{i:04d}")
            rows.append((os.path.basename(path), f"P{i:04d}", i % 2))
        manifest = os.path.join(folder, "manifest.csv")
        with open(manifest, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["path", "patient_id", "label"])
            out.writerows(rows)
        manifests.append((name, manifest))
    return manifests


# ---------------------------------------------------------------- torchvision

def torchvision_rate(manifest, preset, size, workers, seconds):
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision.transforms import v2 as T

    base = os.path.dirname(os.path.abspath(manifest))
    with open(manifest) as f:
        paths = [os.path.join(base, r["path"]) for r in csv.DictReader(f)]

    def ops(s):
        jitter = T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8)
        if preset == "simclr":
            k = int(0.1 * size) // 2 * 2 + 1
            return [T.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True), T.RandomHorizontalFlip(), jitter,
                    T.RandomGrayscale(0.2), T.RandomApply([T.GaussianBlur(k, (0.1, 2.0))], p=0.5)]
        return [T.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True), T.RandomHorizontalFlip(), jitter,
                T.RandomRotation(45)]

    pil_ops = T.Compose(ops(1.0 if preset == "simclr" else 0.5) + [T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])
    tensor_ops = T.Compose(ops(1.0 if preset == "simclr" else 0.5))

    class TwoViews(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            p = paths[i]
            if p.lower().endswith((".dcm", ".dicom")):
                import pydicom
                a = pydicom.dcmread(p).pixel_array.astype(np.float32)
                lo, hi = float(a.min()), float(a.max())
                img = torch.from_numpy((a - lo) / max(hi - lo, 1.0))[None]
                return tensor_ops(img), tensor_ops(img)
            im = Image.open(p)
            if im.mode in ("I;16", "I;16B", "I"):
                img = torch.from_numpy(np.asarray(im, dtype=np.uint16).astype(np.float32) / 65535.0)[None]
                return tensor_ops(img), tensor_ops(img)
            im = im.convert("RGB" if im.mode not in ("L",) else "L")
            return pil_ops(im), pil_ops(im)

    n = min(16, len(paths))
    loader = DataLoader(TwoViews(), batch_size=n, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=True, prefetch_factor=2)
    for _ in loader:  # start the workers, warm the page cache
        pass
    views, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a, b in loader:
            views += a.shape[0] + b.shape[0]
    return views / (time.perf_counter() - t0)


# ---------------------------------------------------------------- micle

def micle_rate(build, manifest, preset, size, workers):
    exe = os.path.join(build, "bench", "bench_loader")
    out = subprocess.run([exe, f"--data={manifest}", f"--preset={preset}", f"--size={size}",
                          f"--workers={','.join(map(str, workers))}", "--benchmark_format=json"],
                         check=True, capture_output=True, text=True).stdout
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        w = next(int(part) for part in b["name"].split("/")[2:] if part.isdigit())  # name/preset/min_time/W/real_time
        rates[w] = b["img/s"]
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--data", help="a CSV manifest of your own images")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--preset", default="chest_xray", choices=["chest_xray", "simclr"])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=32, help="images per generated set")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per row, alternating which side runs first; the ratio is the median of the rounds' "
                         "own ratios, with their range")
    ap.add_argument("--max-side", type=int, default=512, help="longer side of the prepared copies (0: no prepared rows)")
    args = ap.parse_args()
    ensure_venv()
    import torch
    import torchvision
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="micle-loader-") as tmp:
        sets = [(os.path.basename(args.data), args.data)] if args.data else generate(tmp, args.images)
        print(f"preset {args.preset} -> {args.size} px; views/s (2 per sample); torch {torch.__version__}, "
              f"torchvision {torchvision.__version__}, {os.cpu_count()} cores\n")
        print(f"{args.rounds} rounds per row; ratio: median of the rounds' ratios (range)\n")
        print("| files | workers | micle views/s | torchvision views/s | micle / torchvision |")
        print("|---|---|---|---|---|")
        notes = []
        for name, manifest in sets:
            prepared, prep_note = None, ""
            if args.max_side > 0:
                prepared = os.path.join(tmp, os.path.splitext(os.path.basename(manifest))[0] + f".prepared{args.max_side}.npz")
                t0 = time.perf_counter()
                subprocess.run([os.path.join(args.build, "examples", "micle"), "prepare", "--data", manifest, "--out",
                                prepared, "--max-side", str(args.max_side), "--workers", str(max(workers))],
                               check=True, capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                n = sum(1 for _ in open(manifest)) - 1
                prep_note = (f"{name}: prepared at max side {args.max_side} in {seconds:.1f} s "
                             f"({n / seconds:.1f} images/s on {max(workers)} threads), "
                             f"{os.path.getsize(prepared) / 2**20:.1f} MiB")
            rounds = {w: [] for w in workers}  # (micle, torchvision, micle from the prepared file) per round
            for r in range(args.rounds):  # odd rounds run torchvision first
                theirs = {}
                if r % 2:
                    theirs = {w: torchvision_rate(manifest, args.preset, args.size, w, args.seconds) for w in workers}
                mine = micle_rate(args.build, manifest, args.preset, args.size, workers)
                ready = micle_rate(args.build, prepared, args.preset, args.size, workers) if prepared else {}
                if not r % 2:
                    theirs = {w: torchvision_rate(manifest, args.preset, args.size, w, args.seconds) for w in workers}
                for w in workers:
                    rounds[w].append((mine[w], theirs[w], ready.get(w)))
            for label, k in [(name, 0), (f"{name}, prepared (max side {args.max_side})", 2)]:
                if k == 2 and not prepared:
                    continue
                for w in workers:
                    m = statistics.median(x[k] for x in rounds[w])
                    t = statistics.median(x[1] for x in rounds[w])
                    ratios = [x[k] / x[1] for x in rounds[w]]
                    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
                    print(f"| {label} | {w} | {m:.0f} | {t:.0f} | {statistics.median(ratios):.2f}{spread} |", flush=True)
            if prep_note:
                notes.append(prep_note)
        for note in notes:
            print(note)

if __name__ == "__main__":
    main()
