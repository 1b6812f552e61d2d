"""The notebooks' shape: one short identical set-up cell, four parameters, a smoke-size mock
for nbmake, an ending that says what to try next; committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
#: The four chapters of a run's report; 05 scores a finished run on other images.
CHAPTERS = [path for path in NOTEBOOKS if not path.name.startswith("05_")]


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_set_up_cell_is_short_and_the_same_everywhere() -> None:
    # one line says what it does, one holds the kit's address (python -m helpers colab),
    # four find the kit, four clone it in Colab, three stop where it is neither found nor
    # fetched, two import helpers
    first = {path.name: code_cells(path)[0].source for path in NOTEBOOKS}
    assert len(set(first.values())) == 1, first
    assert len(next(iter(first.values())).splitlines()) <= 15


def parameters_cell(path: Path) -> nbformat.NotebookNode:
    return next(c for c in code_cells(path) if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell_runs_at_smoke_size_under_nbmake(path: Path) -> None:
    cell = parameters_cell(path)
    assert 'preset = "report_a"' in cell.source  # the committed default: the real run
    assert cell.metadata["nbmake"]["mock"] == {"preset": "smoke", "output_dir": "reports/_nbmake"}


def test_other_datasets_notebook_scores_the_smoke_run_under_nbmake() -> None:
    cell = parameters_cell(REPO_ROOT / "notebooks" / "05_other_datasets.ipynb")
    for name in ("run_dir", "images_dir", "masks_dir", "mask_pattern"):
        assert f"\n{name} = " in f"\n{cell.source}"
    mock = cell.metadata["nbmake"]["mock"]
    assert mock["run_dir"] == "reports/_nbmake/runs/fine_tuned"  # trained by 02-04 just before
    assert mock["images_dir"].startswith("data/synthetic/")
    assert mock["output_dir"].startswith("reports/_nbmake/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_ends_with_what_to_try_next(path: Path) -> None:
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and "Try next" in last.source
    # names what to change: the preset keys, or for 05 its parameters
    assert "overrides = {" in last.source or "run_dir = " in last.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    assert all(not c.outputs and c.execution_count is None for c in code_cells(path))
