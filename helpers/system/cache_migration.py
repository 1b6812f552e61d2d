"""Removing a split's decode caches in superseded formats, which nothing reads.

A split may have caches in two formats that the decode cache (:mod:`helpers.system.cache`)
does not read. Both are named by the images folder alone (:func:`legacy_cache_name`), which
two layouts sharing an images folder would share:

* ``<name>-<size>-<20 hex digits>.npz``: a whole split in one file (cache version 2);
* ``<name>-<size>/``: a folder of shards (``shard-*.json`` and their ``.npy`` files).

Loading a split removes its own (:func:`remove_old_caches`), to give the disk space back.
"""

from __future__ import annotations

import contextlib
import glob
import re
import shutil
from pathlib import Path

from helpers.system.cache import path_label


def legacy_cache_name(images_dir: Path) -> str:
    """The name the superseded caches of a split have: the end of its images folder's path."""
    return path_label(images_dir)[-80:]


def remove_old_caches(cache_dir: Path, images_dir: Path, size: int) -> None:
    """Remove the superseded caches of the split in ``images_dir`` at ``size`` from
    ``cache_dir``; files that cannot be removed are left."""
    stem = f"{legacy_cache_name(images_dir)}-{size}"
    old_name = re.compile(re.escape(stem) + r"-[0-9a-f]{20}\.npz")
    for old in cache_dir.glob(f"{glob.escape(stem)}-*.npz"):
        if old_name.fullmatch(old.name):
            with contextlib.suppress(OSError):
                old.unlink(missing_ok=True)
    old_folder = cache_dir / stem
    if any(old_folder.glob("shard-*.json")):
        shutil.rmtree(old_folder, ignore_errors=True)
