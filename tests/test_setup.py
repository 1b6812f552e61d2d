"""scripts/setup.sh, the README's first set-up step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_stops_before_installing_when_the_disk_is_too_full(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    needs_gib = 10**9  # more than any disk has free
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin",
                                          "LESIONKIT_SETUP_NEEDS_GIB": str(needs_gib)})
    assert done.returncode == 1
    assert f"needs about {needs_gib} GiB free" in done.stderr
    assert str(tmp_path / ".venv") in done.stderr
    assert "Nothing was installed" in done.stderr
    assert not (tmp_path / ".venv").exists()
