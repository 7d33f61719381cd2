"""SimCLR pretraining with lightly on PyTorch 2.x: `micle pretrain`'s recipe, written out
in lightly and torchvision, for bench/compare_lightly.py. Runs in the bench venv
(bench/pytorch_env.sh: torch, torchvision and lightly from PyPI).

The recipe (micle pretrain --pairs simclr --augment chest_xray, optimizer lars):
- ResNet-18 from torchvision's blocks with the small stem (3x3 stride-1 conv1, no max
  pool), channel base --base instead of 64, 1 input channel, no classifier;
- SimCLR v1 projection head: Linear(F, F), ReLU, Linear(F, 128), with biases, no BN
  (lightly's SimCLRProjectionHead has BN by default, so it is built here by hand);
- lightly's SimCLRTransform with the chest_xray preset's parameters: random resized crop
  (area --crop-min (0.08)-1, aspect 3/4-4/3, bilinear), horizontal flip 0.5, rotation
  uniform in +-(--rotation) (45) degrees (always), colour jitter strength --jitter (0.5)
  with p 0.8, no grayscale, no blur, no normalisation (pixels in [0, 1], as micle's);
  micle's --crop-min, --rotation and --jitter set the same three;
- lightly's NTXentLoss at --temperature over the 2N views;
- lightly's LARS (momentum 0.9, trust coefficient 0.001) with weight decay 1e-6 on conv
  and linear weights, none (and no LARS adaptation) on biases and batch norm, as micle;
  lr 0.3 x batch / 256, linear warmup over 10% of the steps from 0, cosine decay to 0,
  set before every step as micle's schedule does;
- every image once per epoch, shuffled; a shorter last batch is left out, as micle does
  (93 steps per epoch on 12,000 images in both).
Differences that remain (listed in docs/results.md): micle rotates the crop's sampling
grid inside the whole image (corners come from outside the crop, zero only outside the
image), torchvision rotates the cropped view (zero corners); lightly's LARS divides by
|g| + wd |w| where micle (SimCLR's) takes |g + wd w|; the data loaders and random streams
differ, so the two runs see different augmentations.

Writes the backbone's weights with torchvision names and micle's metadata to --out
(safetensors), so that `micle embed` and `micle finetune --init` read it, and prints one
JSON line: {"seconds", "steps", "loss_first", "loss_last", "torch", "lightly"}.
"""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

import lightly
from torch_resnet import resnet
from lightly.loss import NTXentLoss
from lightly.transforms import SimCLRTransform
from lightly.utils.lars import LARS


def write_safetensors(path, tensors, metadata):
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


class Images(torch.utils.data.Dataset):
    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        views = self.transform(Image.fromarray(self.images[i], "L"))
        return views[0], views[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="a MedMNIST-layout .npz; its train_images are pretrained on")
    p.add_argument("--out", required=True, help="the backbone's weights (.safetensors)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--base", type=int, default=16)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--crop-min", type=float, default=0.08, help="smallest crop area, a fraction of the image")
    p.add_argument("--rotation", type=float, default=45.0, help="rotation range, +- degrees")
    p.add_argument("--jitter", type=float, default=0.5, help="colour jitter strength")
    p.add_argument("--lr", type=float, default=0.3, help="base lr, x batch / 256")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    images = np.load(a.data)["train_images"]
    transform = SimCLRTransform(input_size=a.image_size, cj_prob=0.8, cj_strength=a.jitter, min_scale=a.crop_min,
                                random_gray_scale=0.0, gaussian_blur=0.0, hf_prob=0.5, vf_prob=0.0, rr_prob=1.0,
                                rr_degrees=a.rotation, normalize=None)
    loader = torch.utils.data.DataLoader(Images(images, transform), batch_size=a.batch, shuffle=True, drop_last=True,
                                         num_workers=a.workers, persistent_workers=a.workers > 0,
                                         generator=torch.Generator().manual_seed(a.seed))
    backbone = resnet("resnet18", "small", a.base, 1)
    features = 8 * a.base
    head = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Linear(features, 128))
    model = nn.Sequential(backbone, head).train()
    decayed = [q for n, q in model.named_parameters() if q.ndim > 1]
    others = [q for n, q in model.named_parameters() if q.ndim <= 1]
    peak = a.lr * a.batch / 256
    opt = LARS([{"params": decayed, "weight_decay": 1e-6}, {"params": others, "weight_decay": 0.0}], lr=peak,
               momentum=0.9, trust_coefficient=0.001)
    criterion = NTXentLoss(temperature=a.temperature)
    total = a.epochs * len(loader)
    warmup = total // 10

    def lr_at(step):
        if step < warmup:
            return peak * step / warmup
        return peak * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1))) / 2

    losses, step = [], 0
    start = time.perf_counter()
    for _ in range(a.epochs):
        for x0, x1 in loader:
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            z0, z1 = model(torch.cat([x0, x1])).chunk(2)  # one batch of 2N views: batch norm over both, as micle
            loss = criterion(z0, z1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                raise SystemExit(f"lightly_pretrain: the loss is {losses[-1]} at step {step}")
            step += 1
    seconds = time.perf_counter() - start
    meta = {"arch": "resnet18", "width": "1", "base-channels": str(a.base), "channels": "1", "stem": "small",
            "image-size": str(a.image_size), "trained-by": f"lightly {lightly.__version__}, torch {torch.__version__}"}
    write_safetensors(a.out, backbone.state_dict(), meta)
    print(json.dumps({"seconds": seconds, "steps": step, "loss_first": float(np.mean(losses[:10])),
                      "loss_last": float(np.mean(losses[-10:])), "torch": torch.__version__,
                      "torchvision": torchvision.__version__, "lightly": lightly.__version__}))


if __name__ == "__main__":
    main()
