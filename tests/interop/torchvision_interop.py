#!/usr/bin/python3
"""torchvision <-> micle interoperability, run by ctest with Debian's python3-torch.

For resnet18 and resnet50 (random weights, randomised batch-norm statistics):
  1. torchvision weights saved as safetensors load into micle, which gives the same
     inference logits for the same input and (resnet18) the same training-mode parameter
     gradients as autograd. The reference is PyTorch in float64; micle (float32) must be
     as close to it as PyTorch's own float32 result is (within 2x, plus 1e-4 of the
     scale). Training-mode gradients of a randomly initialised resnet50 are too
     ill-conditioned for this: PyTorch's float32 gradients differ from its float64 ones
     by up to 20% there (measured for batches of 2-8 at 64-128 px), so for resnet50 the
     gradients are compared with micle's own reference backend in tests/models instead.
  2. weights initialised and saved by micle load into torchvision (strict), which gives
     the logits micle computed.
Usage: torchvision_interop.py MICLE_INTEROP_BINARY WORK_DIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torchvision

DTYPES = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
NP_DTYPES = {"F32": np.float32, "I64": np.int64, "BF16": None}


def write_safetensors(path, tensors):
    """Writes a dict name -> torch.Tensor in the safetensors layout."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        code, np_type = DTYPES[t.dtype]
        raw = t.numpy().astype(np_type).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=NP_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def as_accurate(name, got, ref32, ref64):
    """|got - ref64| <= 2 |ref32 - ref64| + 1e-4 * scale, elementwise maxima."""
    got, ref32, ref64 = got.double(), ref32.double(), ref64.double()
    scale = ref64.abs().max().item()
    err, err32 = (got - ref64).abs().max().item(), (ref32 - ref64).abs().max().item()
    ok = err <= 2 * err32 + 1e-4 * scale
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: max |err| {err:.3g}, PyTorch f32 {err32:.3g} (scale {scale:.3g})")
    return ok


def close(name, got, want, rtol, atol_scale):
    got, want = got.double(), want.double()
    scale = want.abs().max().item()
    err = (got - want).abs()
    bound = atol_scale * max(scale, 1e-12) + rtol * want.abs()
    worst = (err - bound).max().item()
    ok = worst <= 0
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: max |err| {err.max().item():.3g} (scale {scale:.3g})")
    return ok


def randomise_batch_norm(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.5, 0.5, generator=gen)
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.num_batches_tracked.fill_(7)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    ok = True
    for arch in ["resnet18", "resnet50"]:
        print(f"{arch}:")
        gen = torch.Generator().manual_seed(1)
        model = getattr(torchvision.models, arch)()
        randomise_batch_norm(model, gen)
        x = torch.randn(2, 3, 64, 64, generator=gen)
        dlogits = torch.randn(2, 1000, generator=gen)
        weights = os.path.join(work, f"{arch}.torch.safetensors")
        write_safetensors(weights, model.state_dict())
        inputs = os.path.join(work, f"{arch}.input.safetensors")
        write_safetensors(inputs, {"x": x, "dlogits": dlogits})

        reference = {}
        for dt in (torch.float32, torch.float64):
            m = getattr(torchvision.models, arch)()
            m.load_state_dict(model.state_dict())
            m = m.to(dt).eval()
            with torch.no_grad():
                logits = m(x.to(dt))
            m.train()
            m(x.to(dt)).backward(dlogits.to(dt))
            reference[dt] = (logits, {n: p.grad for n, p in m.named_parameters()})
        (l32, g32), (l64, g64) = reference[torch.float32], reference[torch.float64]

        # 1. torchvision -> micle
        out = os.path.join(work, f"{arch}.micle.safetensors")
        subprocess.run([binary, "--arch", arch, "--weights", weights, "--input", inputs, "--output", out], check=True)
        got = read_safetensors(out)
        ok &= as_accurate("logits (eval)", got["logits"], l32, l64)
        if arch == "resnet18":
            failed = [n for n in g64 if not as_accurate(f"grad {n}", got["grad." + n], g32[n], g64[n])]
            print(f"  {len(g64) - len(failed)} of {len(g64)} parameter gradients as accurate as PyTorch's")
            ok &= not failed

        # 2. micle -> torchvision
        micle_weights = os.path.join(work, f"{arch}.micle-init.safetensors")
        out2 = os.path.join(work, f"{arch}.micle-init-out.safetensors")
        subprocess.run([binary, "--arch", arch, "--seed", "7", "--input", inputs, "--output", out2, "--save-weights",
                        micle_weights], check=True)
        fresh = getattr(torchvision.models, arch)()
        fresh.load_state_dict(read_safetensors(micle_weights), strict=True)
        fresh.eval()
        with torch.no_grad():
            ok &= close("micle weights in torchvision: logits", fresh(x), read_safetensors(out2)["logits"], 1e-3, 1e-4)
    print("interop:", "1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
