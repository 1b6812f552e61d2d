"""Run in a submission's own process by ``grade``: its report notebooks through papermill.

    python -P notebook_runner.py STATUS_JSON OUTPUT_DIR

run with the submission's folder as the working directory. It executes notebooks 01 to 04
in order at smoke size (``preset = "smoke"``, SYNTHETIC data, written to OUTPUT_DIR inside
the submission) and after each one rewrites STATUS_JSON: per notebook, whether it ran, and
for the one that failed its cell and error. It stops at the first failure (the later
notebooks need the earlier ones' runs). It imports nothing of the kit: under the grader the
``helpers`` on the path is the submission's own, so the JSON is written with ``os.replace``
rather than ``helpers.system.atomic``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import papermill

NOTEBOOKS = ("01_data_exploration", "02_frozen_encoder", "03_fine_tuning", "04_comparison")


def write_status(path: Path, status: dict) -> None:
    """Replace ``path`` with ``status`` as JSON in one step."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(status, indent=1, sort_keys=True))
    os.replace(temporary, path)


def run_notebooks(status_path: Path, output_dir: str) -> int:
    """Execute the notebooks in order; 0 when all ran, 1 at the first failure."""
    status = {name: {"ran": False, "cell": None, "error": "not run"} for name in NOTEBOOKS}
    write_status(status_path, status)
    parameters = {"preset": "smoke", "data_root": None, "output_dir": output_dir,
                  "overrides": {}}
    executed = Path(output_dir) / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        status[name]["error"] = "running"
        write_status(status_path, status)
        try:
            papermill.execute_notebook(f"notebooks/{name}.ipynb", str(executed / f"{name}.ipynb"),
                                       parameters=parameters, progress_bar=False, cwd=".")
        except papermill.PapermillExecutionError as error:
            status[name].update(cell=error.cell_index, error=f"{error.ename}: {error.evalue}")
            write_status(status_path, status)
            return 1
        except (OSError, ValueError, RuntimeError) as error:  # a missing or broken notebook
            status[name]["error"] = f"{type(error).__name__}: {error}"
            write_status(status_path, status)
            return 1
        status[name].update(ran=True, error="")
        write_status(status_path, status)
    return 0


if __name__ == "__main__":
    sys.exit(run_notebooks(Path(sys.argv[1]), sys.argv[2]))
