#!/usr/bin/env bash
# The test command: set-up, lint, unit tests, the exercise checks (public and hidden) and the
# notebooks (at smoke size: nbmake applies each parameters cell's mock, preset = "smoke").
# Fast loop: add -m "not notebooks".
# Real-data tests run when LESIONKIT_ISIC2016 names an ISIC 2016 Part 1 folder; else they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest --nbmake tests notebooks checks checks_hidden "$@"
