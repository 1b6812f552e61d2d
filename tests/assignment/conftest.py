"""A student version of this kit, made once per test session (it takes a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.assignment.student import write_student_version
from helpers.paths import REPO_ROOT


@pytest.fixture(scope="session")
def student_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student") / "kit"
    write_student_version(REPO_ROOT, out)
    return out

