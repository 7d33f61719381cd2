#!/usr/bin/python3
"""Regenerates tests/fuzz/corpus: a few valid files per format and many broken variants
(truncations, flipped bytes, wrong headers). The DICOM seeds are files written by DCMTK
(tests/data/writers.hpp), passed as arguments. Deterministic (seeded). Inputs that
fuzzing found (oom-*, leak-*, jpeg-4gb-alloc.jpg, npz-4gb-alloc.npz) are kept in the
corpus as found, and so is prepared/written-by-micle.npz (`micle prepare --max-side 8` of
the gray8, gray16 and rgb8 PNG seeds); scripts/fuzz merges new coverage into it.
Usage: make_corpus.py OUT_DIR SEED1.dcm [SEED2.dcm ...]"""
import io
import json
import os
import random
import struct
import sys
import zipfile

import numpy as np
from PIL import Image

out = sys.argv[1]
rng = random.Random(1)


def variants(name, data, d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    cuts = sorted({0, 1, 7, 8, 16, 33, len(data) // 3, len(data) // 2, len(data) - 1})
    for c in cuts:
        if c < len(data):
            with open(os.path.join(d, f"{name}.cut{c}"), "wb") as f:
                f.write(data[:c])
    for k in range(6):
        b = bytearray(data)
        for _ in range(1 + k):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        with open(os.path.join(d, f"{name}.flip{k}"), "wb") as f:
            f.write(bytes(b))


img = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
for mode, arr, ext in [("L", img, "gray8"), ("RGB", np.stack([img] * 3, -1), "rgb8")]:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    variants(f"{ext}.png", buf.getvalue(), os.path.join(out, "png"))
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "JPEG", quality=90)
    variants(f"{ext}.jpg", buf.getvalue(), os.path.join(out, "jpeg"))
buf = io.BytesIO()
Image.fromarray((img.astype(np.uint16) * 500), "I;16").save(buf, "PNG")
variants("gray16.png", buf.getvalue(), os.path.join(out, "png"))

buf = io.BytesIO()
np.savez_compressed(buf, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.array([[1], [0]], np.uint8))
variants("medmnist.npz", buf.getvalue(), os.path.join(out, "npz"))
buf = io.BytesIO()
np.savez(buf, test_images=np.ones((1, 3, 3, 3), np.uint8), test_labels=np.array([[1, 0]], np.int64))
variants("stored.npz", buf.getvalue(), os.path.join(out, "npz"))

for i, text in enumerate([
    "path,patient_id,label,split\na.png,P1,x,train\n",
    "path,label\n\"unterminated,1\n",
    "image,patient,a,b\nx.png,P,1,0\ny.png,P,0,2\n",
    "\n\n",
    "path,label\n,1\n",
    "path,\"la\"\"bel\",split\nq.png,1,val\n",
]):
    variants(f"manifest{i}.csv", text.encode(), os.path.join(out, "csv"))
# The chest X-ray layouts (the fuzz target reads them as their header says, against the
# images and MIMIC-CXR-JPG files it lays out).
chexpert_head = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
                 "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
                 "Fracture,Support Devices\n")
for name, text in [
    ("chexpert.csv", chexpert_head +
     "train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,-1.0,0.0,,1.0,,,,,1.0\n"
     "\"train/patient00001/study1/view2_lateral.jpg\",Female,68,Lateral,,,,1.0,,,-1,0,,1,,,,,\n"
     "train/patient00002/study1/view1_frontal.jpg,Male,41,Frontal,PA,1.0,,0.0,,,,,,,,0.0,,,\n"),
    ("nih.csv", "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
     "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
     "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
     "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171,\n"),
    ("mimic-metadata.csv", "dicom_id,subject_id,study_id,ViewPosition\nd1,10000032,50414267,PA\nd2,10000032,50414267,LATERAL\n"),
    ("mimic-labels.csv", "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
     "10000032,50414267,-1.0,1.0,,0.0,1.0\n"),
    ("mimic-split.csv", "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,train\nd2,50414267,10000032,validate\n"),
]:
    variants(name, text.encode(), os.path.join(out, "csv"))

header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                     "n": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]},
                     "__metadata__": {"arch": "resnet18"}}).encode()
st = struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4) + struct.pack("<q", 7)
variants("weights.safetensors", st, os.path.join(out, "safetensors"))
variants("overlap.safetensors", st.replace(b"[16, 24]", b"[8, 16]"), os.path.join(out, "safetensors"))

labels = bytes([0, 0, 8, 1, 0, 0, 0, 4, 3, 1, 4, 1])
images = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(range(8))
variants("labels.idx", labels, os.path.join(out, "idx"))
variants("images.idx", images, os.path.join(out, "idx"))
variants("huge-header.idx", bytes([0, 0, 8, 3, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 0, 9]) + bytes(20), os.path.join(out, "idx"))
with open(os.path.join(out, "idx", "images.idx.gz"), "wb") as f:
    import gzip
    f.write(gzip.compress(images, mtime=0))

for k, seed in enumerate(sys.argv[2:]):
    with open(seed, "rb") as f:
        variants(f"seed{k}.dcm", f.read(), os.path.join(out, "dicom"))

# Decompression bombs: a few hundred bytes whose headers promise gigabytes. Each reader
# must refuse them before allocating (tests/CMakeLists.txt: decode_memory_*).
import zlib


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
bomb += png_chunk(b"IDAT", zlib.compress(bytes(60001 * 4))) + png_chunk(b"IEND", b"")
os.makedirs(os.path.join(out, "png"), exist_ok=True)
with open(os.path.join(out, "png", "bomb-60000x60000.png"), "wb") as f:
    f.write(bomb)
# 8000 x 8000 (64 M pixels, under the pixel limit) in a few bytes: over what deflate can hold.
bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 16, 2, 0, 0, 0))
bomb += png_chunk(b"IDAT", zlib.compress(bytes(48001 * 2))) + png_chunk(b"IEND", b"")
with open(os.path.join(out, "png", "bomb-8000x8000-rgb16.png"), "wb") as f:
    f.write(bomb)
for k, seed in enumerate(sys.argv[2:]):
    with open(seed, "rb") as f:
        data = f.read()
    for rows, cols in [(60000, 60000), (8000, 8000)]:
        b = bytearray(data)
        for tag, value in [(b"\x28\x00\x10\x00US\x02\x00", rows), (b"\x28\x00\x11\x00US\x02\x00", cols)]:
            i = b.find(tag)
            assert i >= 0, "seed without explicit-VR Rows/Columns"
            b[i + 8:i + 10] = struct.pack("<H", value)
        with open(os.path.join(out, "dicom", f"seed{k}-bomb-{rows}x{cols}.dcm"), "wb") as f:
            f.write(bytes(b))
# A valid JPEG whose frame header (SOF0) is patched to 60000 x 60000 and to 4000 x 4000:
# over the pixel limit, and over what its few hundred bytes of scan data can fill.
with open(os.path.join(out, "jpeg", "gray8.jpg"), "rb") as f:
    jpeg = f.read()
sof = jpeg.find(b"\xff\xc0")
for h, w in [(60000, 60000), (4000, 4000)]:
    b = bytearray(jpeg)
    b[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    with open(os.path.join(out, "jpeg", f"bomb-{h}x{w}.jpg"), "wb") as f:
        f.write(bytes(b))


def prepared_seeds(d):
    """Prepared datasets (include/micle/data/prepared.hpp) written with Python's zipfile:
    members stored but not aligned (the reader must not depend on the alignment micle's
    writer gives), one 8-bit grey, one 16-bit RGB image, multi-class; and one multi-label
    file whose second image is larger than its stated full size (refused)."""
    def npy(a):
        b = io.BytesIO()
        np.save(b, a)
        return b.getvalue()

    def archive(meta, images, rows):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
            z.writestr("micle_prepared.json", json.dumps(meta))
            for k, a in enumerate(images):
                z.writestr(f"images/{k:08d}.npy", npy(a))
            z.writestr("samples.csv", rows)
        return b.getvalue()

    meta = {"format": "micle-prepared", "version": 1, "source": "m.csv", "max_side": 8, "task": "multiclass",
            "num_classes": 2, "class_names": ["a", "b"], "patients": "source", "samples": 2}
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    rgb = (np.arange(2 * 2 * 3, dtype=np.uint16) * 1000).reshape(2, 2, 3)
    rows = ("member,source,patient,split,full_height,full_width,bits,label\n"
            "images/00000000.npy,\"m.csv:2 (a,b.png)\",0,train,6,8,8,1\n"
            "images/00000001.npy,m.csv:3 (c.png),1,test,2,2,16,0\n")
    variants("multiclass.npz", archive(meta, [grey, rgb], rows), d)
    meta.update(task="multilabel", num_classes=2, class_names=["x", "y"])
    rows = ("member,source,patient,split,full_height,full_width,bits,x,y\n"
            "images/00000000.npy,r0,0,,3,4,8,1,0\n"
            "images/00000001.npy,r1,0,,1,1,16,0,1\n")
    variants("multilabel-too-small.npz", archive(meta, [grey, rgb], rows), d)


prepared_seeds(os.path.join(out, "prepared"))
