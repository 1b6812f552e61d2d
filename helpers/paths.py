"""Paths of the repository: where relative paths are taken from, and how paths are shown.

Reports must not carry the paths of the machine that made them, so every path a notebook or
table shows goes through :func:`display_path`.

The names of the data folders and files that several modules share are here too, so that none
of them has to import another for a name.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where the demo presets generate their SYNTHETIC data set.
SYNTHETIC_ROOT = REPO_ROOT / "data" / "synthetic"

#: The official ISIC 2016 Part 1 folders under a data root, by split: (images, masks).
ISIC2016_FOLDERS = {
    "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
}
#: How ISIC 2016 names the mask of the image ``<id>.jpg``.
ISIC2016_MASK_PATTERN = "{id}_Segmentation.png"
#: A file of this name beside a split's images folder (in the data root) marks its images as
#: SYNTHETIC.
SYNTHETIC_MARKER = "SYNTHETIC.txt"


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
