"""pytest set-up for the whole repository, also for a bare ``pytest --nbmake notebooks``.

The notebooks run at smoke size under nbmake (each parameters cell's ``nbmake.mock`` sets
``preset = "smoke"`` and ``output_dir = "reports/_nbmake"``). That folder is emptied before
they run, so every test session trains afresh and never resumes a run left by an older
version of the notebooks or of the smoke preset. Every notebook gets the ``notebooks``
marker, so ``pytest -m "not notebooks"`` is the fast loop.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

NBMAKE_OUTPUT = Path(__file__).resolve().parent / "reports" / "_nbmake"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("LESIONKIT_HEADLESS", "1")  # nbmake runs notebooks headless too


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    notebooks = [item for item in items if item.path.suffix == ".ipynb"]
    for item in notebooks:
        item.add_marker(pytest.mark.notebooks)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.path.suffix == ".ipynb" and item.path.name.startswith("01_"):
        shutil.rmtree(NBMAKE_OUTPUT, ignore_errors=True)  # a fresh smoke run for 01 to 04
