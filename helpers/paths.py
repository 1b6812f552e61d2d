"""Paths of the repository: where relative paths are taken from, and how paths are shown.

Reports must not carry the paths of the machine that made them, so every path a notebook or
table shows goes through :func:`display_path`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where the demo presets generate their SYNTHETIC data set.
SYNTHETIC_ROOT = REPO_ROOT / "data" / "synthetic"


def resolve_path(path: str | Path) -> Path:
    """A relative path is taken from the repository root (so notebooks run from anywhere)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository (``../shared/x`` for a neighbour folder), or as it
    is when it lies elsewhere on the machine. A neighbour reached through a symbolic link
    (``../shared`` linking to another disk) still counts as a neighbour."""
    resolved = Path(path).resolve()
    written = Path(os.path.abspath(path))  # ".." collapsed as text: must name the same place
    candidates = [written] if written.resolve() == resolved else []
    for candidate in (*candidates, resolved):
        relative = Path(os.path.relpath(candidate, REPO_ROOT))
        if relative.parts[:2] != ("..", ".."):
            return relative.as_posix()
    return str(resolved)


def public_path(path: str | Path) -> str:
    """How a report shows ``path`` (relative ones are taken from the repository): relative to
    the kit when inside it or beside it, else ``<outside the kit>/<its name>``."""
    shown = display_path(resolve_path(path))
    return shown if not Path(shown).is_absolute() else f"<outside the kit>/{Path(shown).name}"
