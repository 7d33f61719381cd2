#!/usr/bin/python3
"""The SimCLR training step of bench_step.cpp (CPU) and bench_step_gpu.cu (GPU), in
PyTorch, in its fastest setting.

torchvision ResNet (the small stem: 3x3 stride-1 conv1 and no max pool), a SimCLR v1
projection head (Linear(F, F), ReLU, Linear(F, 128)), NT-Xent at temperature 0.1 over
both views, backward, SGD (momentum 0.9, weight decay 1e-6); channels_last memory format
(oneDNN convolutions inside PyTorch on the CPU, cuDNN's NHWC kernels on the GPU).
CPU: the given number of threads. GPU (--device cuda): --precision tf32 (fp32 with TF32
tensor cores, PyTorch's cuDNN default), fp32 (TF32 off) or bf16 (autocast, fp32 weights);
on the CPU, --precision bf16 runs the step under CPU autocast(bfloat16), anything else fp32.

Prints one JSON line: {"name", "img_per_s", "step_ms", "steps", "torch", "device"}.
"""
import argparse
import contextlib
import json
import time

import torch
import torch.nn.functional as F

from torch_resnet import features, resnet


def build(arch, stem):
    model = resnet(arch, stem)
    f = features(arch)
    head = torch.nn.Sequential(torch.nn.Linear(f, f), torch.nn.ReLU(), torch.nn.Linear(f, 128))
    return model, head


def nt_xent(z, temperature):
    z = F.normalize(z, dim=1)
    n2 = z.shape[0]
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return F.cross_entropy(logits, targets)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--stem", default="imagenet", choices=["imagenet", "small"])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--n", type=int, default=64, help="samples per step (2n views)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="tf32", choices=["tf32", "fp32", "bf16"],
                   help="GPU: tf32, fp32 or bf16 autocast; CPU: bf16 autocast, else fp32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gpu = a.device == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = False  # heuristics, as micle's context
        torch.backends.cudnn.allow_tf32 = a.precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = a.precision != "fp32"
    model, head = build(a.arch, a.stem)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(a.device, memory_format=fmt).train()
    head = head.to(a.device).train()
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9, weight_decay=1e-6)
    views = torch.randn(2 * a.n, 3, a.res, a.res).to(a.device).contiguous(memory_format=fmt)
    bf16 = a.precision == "bf16"
    autocast = torch.autocast(a.device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            z = head(model(views))
        loss = nt_xent(z.float(), 0.1)
        loss.backward()
        opt.step()
        return loss.item()  # waits for the device, as micle's step does

    step()  # warm-up: oneDNN primitives or cuDNN algorithms, allocator
    step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= a.seconds and steps >= 2:
            break
    name = f"{a.arch}_{a.stem}/{a.res}/{a.n}x2" + (f"/{a.precision}" if gpu or bf16 else "")
    device = torch.cuda.get_device_name() if gpu else f"cpu, {a.threads} threads"
    print(json.dumps({"name": name, "img_per_s": steps * 2 * a.n / elapsed, "step_ms": 1000 * elapsed / steps,
                      "steps": steps, "torch": torch.__version__, "device": device}))


if __name__ == "__main__":
    main()
