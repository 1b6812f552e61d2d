"""Writing files atomically: to a unique temporary name beside the target first, flushed to
the disk, then renamed over it in one step, so a crash (or a power cut) never leaves a
half-written file behind and two writers never share a temporary file. Every file the kit
writes goes through :func:`atomic_path`."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.errors import DiskFullError

TEMPORARY_MARK = ".tmp"
#: errno values that mean "no room left", on the disk or in the user's quota.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _default_mode() -> int:
    """The permissions a new file gets here (0o666 less the umask), as open() would give it."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; on leaving the block without an
    error it replaces ``path``, on an error it is removed and ``path`` is left as it was.

    The temporary name keeps ``path``'s suffix (``.png``, ``.npz``) for writers that choose
    the format by it. ``durable=False`` skips the flushes to the disk, for many files that
    the caller flushes at once (``os.sync``) before recording that they are complete.
    """
    path = Path(path)
    try:  # a full disk, wherever it shows (the temporary file, the writer, the flush)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.",
                                        suffix=TEMPORARY_MARK + path.suffix, dir=path.parent)
        os.close(handle)
        tmp = Path(name)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else _default_mode())
        try:
            yield tmp
            if durable:
                _flush_to_disk(tmp)  # else a power cut may leave the renamed file empty
            os.replace(tmp, path)
            if durable:
                _flush_to_disk(path.parent)  # the rename itself
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise _disk_full(path, error) from error
        raise


def _disk_full(path: Path, error: OSError) -> DiskFullError:
    """A full disk (or quota), named with the file being written and the space left."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.1f} MiB free there"
    except OSError:
        free = "its free space unknown"
    return DiskFullError(f"Cannot write {path}: the disk is full ({free}; {error.strerror}). "
                         "Free some space and run again; the files written before are intact.")


def _flush_to_disk(path: Path) -> None:
    """fsync a file or a folder (folders only where the system allows it: not on Windows)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(handle)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(handle)


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder`` (only call this while no
    other writer uses the folder, e.g. under a lock); return them."""
    leftovers = [p for p in Path(folder).glob(f".*{TEMPORARY_MARK}*") if p.is_file()]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
