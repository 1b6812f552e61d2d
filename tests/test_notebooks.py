"""The notebooks' shape: one short identical set-up cell, four parameters, a smoke-size mock
for nbmake, an ending that says what to try next; committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_set_up_cell_is_short_and_the_same_everywhere() -> None:
    first = {path.name: code_cells(path)[0].source for path in NOTEBOOKS}
    assert len(set(first.values())) == 1, first
    assert len(next(iter(first.values())).splitlines()) <= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_runs_at_smoke_size_under_nbmake(path: Path) -> None:
    cell = next(c for c in code_cells(path) if "parameters" in c.metadata.get("tags", []))
    assert 'preset = "report_a"' in cell.source  # the committed default: the real run
    assert cell.metadata["nbmake"]["mock"] == {"preset": "smoke", "output_dir": "reports/_nbmake"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_ends_with_what_to_try_next(path: Path) -> None:
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and "Try next" in last.source
    assert "overrides = {" in last.source  # names the preset keys to change


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    assert all(not c.outputs and c.execution_count is None for c in code_cells(path))
