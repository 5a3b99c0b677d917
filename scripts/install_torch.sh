#!/usr/bin/env bash
# Install PyTorch into the given interpreter's environment without pulling a multi-GB CUDA build
# onto a machine that has no GPU. Keeps whatever torch is already there (e.g. Colab's).
#   install_torch.sh PY           install (make install)
#   install_torch.sh PY FOLDER    download that same build's wheel into FOLDER instead, without its dependencies,
#                                 and write its pin (torch==VERSION) to FOLDER/torch-pin.txt (make wheelhouse)
# PIP_OFFLINE (set by make when a wheelhouse exists, e.g. "--no-index --find-links wheelhouse"): install from
# there only, with pip's index turned off.
set -euo pipefail
PY=${1:-python3}
DEST=${2:-}
SPEC='torch>=2.5,<3'
if [ -n "$DEST" ]; then
  # Into an empty folder first, so that the wheel chosen here is known even when DEST holds older ones.
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  get() { "$PY" -m pip download --no-deps -d "$TMP" "$@"; }
  VERB=downloading
else
  if "$PY" -c "import torch" 2>/dev/null; then
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
    exit 0
  fi
  if [ -n "${PIP_OFFLINE:-}" ]; then
    echo "installing torch from the wheelhouse: pip install $PIP_OFFLINE"
    # shellcheck disable=SC2086  # PIP_OFFLINE holds several options
    "$PY" -m pip install $PIP_OFFLINE "$SPEC"
    exit 0
  fi
  get() { "$PY" -m pip install "$@"; }
  VERB=installing
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU found: $VERB the default (CUDA) build of torch"
  get "$SPEC"
else
  echo "no GPU: $VERB a CPU build of torch"
  # 1. a CPU wheel already at hand (pip's --find-links, e.g. a wheel cache), without touching an index;
  # 2. PyTorch's own CPU-only index; 3. the default index as a last resort.
  if get --no-index --no-deps "$SPEC" 2>/dev/null; then
    [ -n "$DEST" ] || get "$SPEC"  # its dependencies (a download leaves them to the caller, see above)
  elif get --timeout 30 "$SPEC" --index-url https://download.pytorch.org/whl/cpu; then
    :
  else
    get "$SPEC"
  fi
fi
if [ -n "$DEST" ]; then
  mkdir -p "$DEST"
  for whl in "$TMP"/torch-*.whl; do
    mv "$whl" "$DEST"/
    echo "torch==$(basename "$whl" | cut -d- -f2)" >"$DEST/torch-pin.txt"
    echo "saved $DEST/$(basename "$whl"); pinned in $DEST/torch-pin.txt: $(cat "$DEST/torch-pin.txt")"
  done
fi
