"""The student version's main job stops at an unsolved exercise with its hint."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from helpers.errors import ExerciseUnsolved, NotebookFailed
from helpers.report.notebooks import execute


def failing_with(ename: str, evalue: str):
    def execute_notebook(*args: object, **kwargs: object) -> None:
        raise papermill.PapermillExecutionError(cell_index=6, exec_count=3, source="",
                                                ename=ename, evalue=evalue, traceback=[])
    return execute_notebook


def test_an_exercise_stub_becomes_its_hint(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setattr(papermill, "execute_notebook",
                        failing_with("NotImplementedError", "Exercise 2 (frozen): the hint"))
    with pytest.raises(ExerciseUnsolved, match=r"^02_frozen_encoder\.ipynb stopped at an "
                       r"unsolved exercise \(cell 6\): Exercise 2 \(frozen\): the hint\. "):
        execute("02_frozen_encoder", {}, tmp_path)


def test_any_other_error_names_the_cell_as_before(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(papermill, "execute_notebook",
                        failing_with("NotImplementedError", "not an exercise"))
    with pytest.raises(NotebookFailed, match="failed in cell 6") as raised:
        execute("02_frozen_encoder", {}, tmp_path)
    assert not isinstance(raised.value, ExerciseUnsolved)
