#!/usr/bin/python3
"""The include graph of include/micle follows the layer order stated in
include/micle/micle.hpp and docs/concepts.md:

    core <- backend, data <- nn <- models, heads, contrastive, optim <- dist <- train

A header may include headers of its own folder and of the folders its layer is allowed
to depend on, and nothing above: no header in nn, models, heads, contrastive or optim
includes dist or train; data and backend depend on core alone. Every violation is
printed as FILE:LINE: FOLDER includes HEADER; the check exits 1 if there is one.
Usage: check_layers.py INCLUDE_DIR"""
import os
import re
import sys

ALLOWED = {
    "core": {"core"},
    "backend": {"core", "backend"},
    "data": {"core", "data"},
    "nn": {"core", "nn"},
    "models": {"core", "nn", "models"},
    "heads": {"core", "nn", "heads"},
    "contrastive": {"core", "nn", "data", "contrastive"},
    "optim": {"core", "nn", "optim"},
    "dist": {"core", "backend", "nn", "models", "heads", "contrastive", "optim", "dist"},
    "train": {"core", "backend", "data", "nn", "models", "heads", "contrastive", "optim", "dist", "train"},
}

# A backend's specialisations of a policy above it, named one by one: the GPU's fused
# optimizers specialise optim's templates for micle::cudnn (nothing in optim includes them).
EXCEPTIONS = {
    "backend/cudnn/optim.hpp": {"optim", "nn"},
}

root = os.path.join(sys.argv[1], "micle")
include = re.compile(r'^\s*#\s*include\s+"micle/([a-z_]+)/[^"]+"')
violations, headers = [], 0
for folder in sorted(os.listdir(root)):
    path = os.path.join(root, folder)
    if not os.path.isdir(path):
        continue  # micle.hpp, the umbrella header, may include anything
    if folder not in ALLOWED:
        violations.append(f"{path}: folder '{folder}' has no place in the layer order (add it to ALLOWED)")
        continue
    for dirpath, _, files in os.walk(path):
        for name in sorted(files):
            if not name.endswith((".hpp", ".cuh", ".h")):
                continue
            headers += 1
            file = os.path.join(dirpath, name)
            with open(file, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    m = include.match(line)
                    relative = os.path.relpath(file, root)
                    if m and m.group(1) not in ALLOWED[folder] | EXCEPTIONS.get(relative, set()):
                        violations.append(f"{file}:{line_no}: {folder} includes micle/{m.group(1)}/ "
                                          f"({folder} may include {', '.join(sorted(ALLOWED[folder]))})")
for v in violations:
    print(v)
if headers == 0:
    print(f"layers: no headers under {root}")
    sys.exit(1)
print(f"layers: {headers} headers, {len(violations)} violations")
sys.exit(1 if violations else 0)
