#!/usr/bin/env bash
# Install PyTorch into the given interpreter's environment without pulling a multi-GB CUDA build
# onto a machine that has no GPU. Keeps whatever torch is already there (e.g. Colab's).
set -euo pipefail
PY=${1:-python3}
SPEC='torch>=2.5,<3'
if "$PY" -c "import torch" 2>/dev/null; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU found: installing the default (CUDA) build of torch"
  "$PY" -m pip install "$SPEC"
  exit 0
fi
echo "no GPU: installing a CPU build of torch"
# 1. a CPU wheel already at hand (pip's --find-links, e.g. a wheel cache), without touching an index;
# 2. PyTorch's own CPU-only index; 3. the default index as a last resort.
if "$PY" -m pip install --no-index --no-deps "$SPEC" 2>/dev/null; then
  "$PY" -m pip install "$SPEC"
elif "$PY" -m pip install --timeout 30 "$SPEC" --index-url https://download.pytorch.org/whl/cpu; then
  :
else
  "$PY" -m pip install "$SPEC"
fi
