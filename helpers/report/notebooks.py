"""Running the report's four notebooks with papermill, headless, in a fresh kernel each.

Each notebook gets the same four parameters (preset, data and output folders, overrides) and
is written, executed, to ``<output>/notebooks/``. A failing cell stops the run with
:class:`~helpers.errors.NotebookFailed` naming the notebook and the cell; the notebook up to
the error stays. While a training notebook runs, the console shows its epochs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import papermill
from tqdm.auto import tqdm

from helpers.config import RunConfig
from helpers.errors import STUB_PREFIX, ExerciseUnsolved, NotebookFailed
from helpers.paths import REPO_ROOT
from helpers.report.privacy import hide_machine_folders

NOTEBOOKS = ("01_data_exploration", "02_frozen_encoder", "03_fine_tuning", "04_comparison")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: Set while notebooks run headless (papermill, nbmake): 04 then shows no live widget, which
#: is inert in a saved notebook anyway and can leave papermill waiting for ever after its cell.
HEADLESS_VARIABLE = "LESIONKIT_HEADLESS"
#: The kernel's own log: warnings only (it warns on every start that its local TCP sockets
#: are unencrypted, which says nothing about the run); errors in cells reach the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: The run folder each training notebook fills, for the console's per-epoch bar.
TRAINED_IN = {"02_frozen_encoder": "frozen", "03_fine_tuning": "fine_tuned"}


def notebook_parameters(config: RunConfig, overrides: dict) -> dict:
    """The four parameters every notebook takes, with paths relative to the repository."""
    return {"preset": config.preset,
            "data_root": os.path.relpath(config.data_root, REPO_ROOT),
            "output_dir": os.path.relpath(config.output_dir, REPO_ROOT),
            "overrides": overrides}


def execute(name: str, parameters: dict, out_dir: Path) -> Path:
    """Execute one notebook with papermill; raise :class:`NotebookFailed` naming the cell.
    Whatever was written, finished or not, names no folder of this machine."""
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    target = out_dir / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.environ[HEADLESS_VARIABLE] = "1"  # the kernel inherits it: no live widgets (plots)
    try:
        papermill.execute_notebook(str(source), str(target), cwd=str(REPO_ROOT),
                                   progress_bar=False, parameters=parameters,
                                   extra_arguments=KERNEL_ARGUMENTS)
    except papermill.PapermillExecutionError as error:
        if error.ename == "NotImplementedError" and error.evalue.startswith(STUB_PREFIX):
            raise ExerciseUnsolved(f"{name}.ipynb stopped at an unsolved exercise (cell "
                                   f"{error.cell_index}): {error.evalue}. ASSIGNMENT.md lists "
                                   "the exercises; `pytest checks` checks them") from error
        raise NotebookFailed(f"{name}.ipynb failed in cell {error.cell_index} (execution count "
                             f"{error.exec_count}): {error.ename}: {error.evalue}. The executed "
                             f"notebook up to the error is {target}") from error
    finally:
        hide_machine_folders(target)
    return target


@contextmanager
def epoch_progress(config: RunConfig, notebook: str, interval: float = 1.0) -> Iterator[None]:
    """While a training notebook runs in its kernel, show its epochs in this console: a
    second bar that follows the run folder's ``history.csv``. Other notebooks: nothing."""
    if notebook not in TRAINED_IN:
        yield
        return
    name = TRAINED_IN[notebook]
    history = config.run_dir(name) / "history.csv"
    bar = tqdm(total=config.model(name).epochs, desc=f"  {name} epochs", unit="epoch",
               leave=False)
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(interval):
            try:
                done = max(0, len(history.read_text().splitlines()) - 1)
            except OSError:
                continue
            bar.update(min(done, bar.total) - bar.n)

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        bar.close()
