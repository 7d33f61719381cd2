#!/usr/bin/env bash
# Creates, on first use, a virtual environment with current PyTorch 2.x, torchvision and
# lightly from PyPI, for the benchmarks that compare micle with them (never needed by CI
# or the library), and prints its python. Later calls reuse it.
#
#   bench/pytorch_env.sh                 -> prints e.g. /root/.cache/micle/bench-venv/bin/python
#   MICLE_BENCH_VENV=/path bench/pytorch_env.sh
#
# PyPI's default torch wheel is the CUDA build (about 5.5 GB with its libraries); it runs on
# the CPU alone as well. Pin versions with MICLE_BENCH_PIP (default: torch torchvision lightly).
set -euo pipefail
venv=${MICLE_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/micle/bench-venv}
packages=${MICLE_BENCH_PIP:-torch torchvision lightly}
if ! "$venv/bin/python" -c "import torch, torchvision, lightly" 2>/dev/null; then
  if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    echo "pytorch_env.sh: python3 -m venv needs Debian's python3-venv (apt-get install -y python3-venv)" >&2
    exit 1
  fi
  echo "pytorch_env.sh: creating $venv with $packages from PyPI (several GB, a few minutes)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check $packages >&2
  "$venv/bin/python" -c "import torch, torchvision, lightly" >&2
fi
echo "$venv/bin/python"
