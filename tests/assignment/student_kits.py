"""What the assignment tests share: a student version's exercise files, solving it with the
instructor's files, and running its checks in a process of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers.assignment.student import all_regions, kit_files
from helpers.paths import REPO_ROOT


def exercise_files(kit: Path) -> list[str]:
    """The files of ``kit`` that hold code exercises."""
    return sorted({r.file for r in all_regions(kit, kit_files(kit)) if r.kind == "code"})


def solve(student: Path, target: Path, files: list[str]) -> Path:
    """A copy of ``student`` with the instructor's ``files`` put back in."""
    shutil.copytree(student, target)
    for name in files:
        shutil.copyfile(REPO_ROOT / name, target / name)
    return target


def run_checks(kit: Path) -> subprocess.CompletedProcess:
    """``pytest checks`` in ``kit``, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "checks"], cwd=kit, capture_output=True, text=True, timeout=600)
