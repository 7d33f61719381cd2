#!/usr/bin/python3
"""A shifted copy of Fashion-MNIST's test set: the paper's distribution-shift evaluation
(a model fine-tuned on one acquisition, tested zero-shot on another) without a second
dataset, in the spirit of ImageNet-C and CheXphoto (chest X-rays photographed off a
screen): the same 10,000 images and labels as another device would have acquired them.

Each corruption at severity 1-5 (images as floats in [0, 1]):
  gamma     exposure: x ** g,              g     = 1.2, 1.4, 1.6, 1.8, 2.0
  contrast  (x - mean) * c + mean,         c     = 0.8, 0.65, 0.5, 0.4, 0.3
  blur      Gaussian, sigma in pixels      sigma = 0.4, 0.6, 0.8, 1.0, 1.2
  resample  down by f then back up (bilinear, a lower-resolution sensor)
                                           f     = 0.85, 0.75, 0.65, 0.55, 0.45
  noise     additive Gaussian sensor noise sigma = 0.02, 0.04, 0.06, 0.08, 0.10
`acquisition` (the default) applies all five in that order at the same severity: a
different device, not one artefact. The noise is seeded (--seed); the result is rounded
back to uint8 and written as a MedMNIST-layout .npz with only a test split (`micle
evaluate --data OUT.npz --split test`).

Usage: shifted_test_set.py --out OUT.npz [--shift acquisition] [--severity 3] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_mnist  # noqa: E402

SEVERITY = {
    "gamma": [1.2, 1.4, 1.6, 1.8, 2.0],
    "contrast": [0.8, 0.65, 0.5, 0.4, 0.3],
    "blur": [0.4, 0.6, 0.8, 1.0, 1.2],
    "resample": [0.85, 0.75, 0.65, 0.55, 0.45],
    "noise": [0.02, 0.04, 0.06, 0.08, 0.10],
}
ORDER = ["gamma", "contrast", "blur", "resample", "noise"]


def through_pil(x, op):
    """op on each image as a 32-bit float PIL image (no uint8 rounding in between)."""
    return np.stack([np.asarray(op(Image.fromarray(im.astype(np.float32), "F")), np.float32) for im in x])


def corrupt(x, kind, v, rng):
    if kind == "gamma":
        return x ** v
    if kind == "contrast":
        mean = x.mean(axis=(1, 2), keepdims=True)
        return (x - mean) * v + mean
    if kind == "blur":  # separable, a kernel of +-3 sigma, edges reflected
        r = max(1, int(np.ceil(3 * v)))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / v) ** 2)
        k /= k.sum()
        for axis in (1, 2):
            pad = [(0, 0)] * 3
            pad[axis] = (r, r)
            xp = np.pad(x, pad, mode="reflect")
            n = x.shape[axis]
            x = sum(w * np.take(xp, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
        return x
    if kind == "resample":
        h, w = x.shape[1:]
        small = (max(1, round(w * v)), max(1, round(h * v)))
        return through_pil(x, lambda im: im.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR))
    if kind == "noise":
        return x + rng.normal(0.0, v, x.shape)
    raise ValueError(kind)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--shift", default="acquisition", choices=["acquisition", *ORDER])
    p.add_argument("--severity", type=int, default=3, choices=range(1, 6))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    images, labels = fashion_mnist.load("test")
    images = images.astype(np.float32) / 255.0
    rng = np.random.default_rng(a.seed)
    for kind in ORDER if a.shift == "acquisition" else [a.shift]:
        images = np.clip(corrupt(images, kind, SEVERITY[kind][a.severity - 1], rng), 0.0, 1.0)
    out = np.rint(images * 255.0).astype(np.uint8)
    np.savez(a.out, test_images=out, test_labels=labels.reshape(-1, 1))
    print(f"shifted_test_set: {len(out)} test images, {a.shift} at severity {a.severity} -> {a.out}")


if __name__ == "__main__":
    sys.exit(main())
