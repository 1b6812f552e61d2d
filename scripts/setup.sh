#!/usr/bin/env bash
# One-time set-up, safe to repeat: a virtual environment in .venv with the requirements and the
# helpers package, plus the verified ImageNet weights for MobileNetV2 in torch's hub cache.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
# The first install writes about 6.3 GiB into .venv (PyPI's torch carries its CUDA libraries):
# with less free space it would stop half-way with pip's "No space left on device".
needs_gib=${LESIONKIT_SETUP_NEEDS_GIB:-7}
stamp=.venv/.lesionkit-installed
wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  if [ ! -x .venv/bin/python ] && ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "scripts/setup.sh: the kit needs Python 3.11 or newer (torch 2.15.0, pinned in" \
         "requirements.txt, is made for no older one), and $python is" \
         "$("$python" --version 2>&1). Nothing was installed; run it again with" \
         "PYTHON=python3.11 (or newer)." >&2
    exit 1
  fi
  if ! { [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; }; then
    free_mib=$(( $(df -Pk . | awk 'NR == 2 {print $4}') / 1024 ))
    if [ "$free_mib" -lt $(( needs_gib * 1024 )) ]; then
      echo "scripts/setup.sh: installing the requirements into $PWD/.venv needs about" \
           "$needs_gib GiB free on its disk, and only $free_mib MiB are free there." \
           "Nothing was installed; free some space and run it again." >&2
      exit 1
    fi
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  echo "Installing requirements into .venv (torch is large: the first time takes a few minutes)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$wanted" > "$stamp"
fi
.venv/bin/python -m helpers weights
