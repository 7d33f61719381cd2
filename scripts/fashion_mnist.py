"""Debian's dataset-fashion-mnist as NumPy arrays, for micle's Python scripts, benches and
tests (the library reads it itself: data/fashion_mnist.hpp).

    import fashion_mnist
    images, labels = fashion_mnist.load("train")   # uint8 [60000, 28, 28], uint8 [60000]
"""
import gzip

import numpy as np

DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzip-compressed) as an array of its dimensions."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load(split):
    """(images, labels) of the train or test split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    return read_idx(f"{DIR}/{prefix}-images-idx3-ubyte.gz"), read_idx(f"{DIR}/{prefix}-labels-idx1-ubyte.gz")
