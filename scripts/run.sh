#!/usr/bin/env bash
# The main job: run the four notebooks for a preset (default: demo, on SYNTHETIC data) and
# export the report to reports/<preset>/.   Usage: bash scripts/run.sh [PRESET] [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
preset=${1:-demo}
args=(--preset "$preset")
[ $# -ge 2 ] && args+=(--data-root "$2")
exec .venv/bin/python -m helpers.report "${args[@]}"
