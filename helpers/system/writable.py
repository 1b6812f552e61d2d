"""Output paths checked before any work.

A command that computes for minutes and then cannot write its result has wasted the minutes:
each one checks its output folder (or file) first, with :func:`output_folder` or
:func:`output_file`. (A disk that fills up while writing is named by
:func:`helpers.system.atomic.atomic_path`.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from helpers.errors import OutputFolderError


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (or in it once created), or None. Nothing is
    left behind: a missing folder is not created here, only tried in the nearest folder above
    it that exists, with a probe folder removed at once."""
    existing = folder
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_folder = existing.is_dir()
    except OSError as error:  # a folder above it that cannot be read
        return f"cannot be checked: {error.strerror or error}. Choose a folder you can write to"
    if not is_folder:
        return ("is a file, not a folder. Choose a folder" if existing == folder else
                f"cannot be created: {existing} is a file. Choose another folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lesionkit-probe-", dir=existing))
    except OSError as error:
        where = "" if existing == folder else f" (in {existing})"
        return (f"cannot be written{where}: {error.strerror or error}. Choose a folder you can "
                "write to")
    return None


def _resolved(path: Path, what: str) -> Path:
    """``path`` made absolute with its links followed, or an :class:`OutputFolderError`
    (a link loop, a folder above it that cannot be read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:
        raise OutputFolderError(f"The {what} {path} cannot be used: {error}.") from error


def output_folder(path: str | Path, inputs: Iterable[str | Path] = (),
                  what: str = "output folder") -> Path:
    """``path``, checked writable (not created); an :class:`OutputFolderError` names
    it when it is a file, cannot be created or written, or is one of the ``inputs`` folders
    (what is written there would be read as input the next time; the kit reads only the
    files directly in a folder, so a folder inside an input folder is fine)."""
    path = Path(path)
    resolved = _resolved(path, what)
    for given in inputs:
        if resolved == _resolved(Path(given), "input folder"):
            raise OutputFolderError(f"The {what} {path} is the input folder {given}: what is "
                                    "written there would be read as input the next time. "
                                    "Choose another folder.")
    problem = _unwritable(resolved)
    if problem:
        raise OutputFolderError(f"The {what} {path} {problem}.")
    return path


def output_file(path: str | Path, what: str = "output file") -> Path:
    """``path`` as a file to be written: not a folder, and in a folder that can be written
    (or created); else an :class:`OutputFolderError` naming it."""
    path = Path(path)
    resolved = _resolved(path, what)
    if resolved.is_dir():
        raise OutputFolderError(f"The {what} {path} is a folder; give a file name, such as "
                                f"{path / 'model.onnx'}.")
    problem = _unwritable(resolved.parent)
    if problem:
        raise OutputFolderError(f"Cannot write the {what} {path}: its folder {problem}.")
    return path
