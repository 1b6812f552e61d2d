#!/usr/bin/env bash
# The test command: set-up, lint, unit tests and the notebooks (at smoke size, through nbmake).
# Real-data tests run when LESIONKIT_ISIC2016 names an ISIC 2016 Part 1 folder; else they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
LESIONKIT_PRESET=smoke .venv/bin/python -m pytest --nbmake tests notebooks "$@"
