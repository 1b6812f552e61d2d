"""scripts/setup.sh, the README's first set-up step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _copy_of_the_kits_setup(folder: Path) -> None:
    (folder / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", folder / "scripts" / "setup.sh")
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)


def test_setup_stops_before_installing_when_the_disk_is_too_full(tmp_path: Path) -> None:
    _copy_of_the_kits_setup(tmp_path)
    needs_gib = 10**9  # more than any disk has free
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin",
                                          "LESIONKIT_SETUP_NEEDS_GIB": str(needs_gib)})
    assert done.returncode == 1
    assert f"needs about {needs_gib} GiB free" in done.stderr
    assert str(tmp_path / ".venv") in done.stderr
    assert "Nothing was installed" in done.stderr
    assert not (tmp_path / ".venv").exists()


def test_setup_stops_before_installing_with_a_python_older_than_3_11(tmp_path: Path) -> None:
    _copy_of_the_kits_setup(tmp_path)
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.10.14"; exit 0; fi\n'
                   'exit 1\n')  # the version check asks "older than 3.11?" and gets yes
    old.chmod(0o755)
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": str(old)})
    assert done.returncode == 1
    assert "needs Python 3.11 or newer" in done.stderr and "Python 3.10.14" in done.stderr
    assert "Nothing was installed" in done.stderr
    assert not (tmp_path / ".venv").exists()
