"""The decode cache: resized uint8 images and masks on disk, in shards, read back by rows.

Decoding and resizing JPEGs is the slow part of loading a split, so it is done once. Each
split and size has a folder ``<cache_dir>/<split>-<size>/`` of *shards*; a shard holds up to
:data:`SHARD_BYTES` of samples as three files:

* ``shard-<key>.images.npy``  (n, S, S, 3) uint8
* ``shard-<key>.masks.npy``   (n, S, S) uint8, values {0, 1}
* ``shard-<key>.json``        for each row: the sample's id, original size, *source key*
  (its image and mask files' paths, sizes, times and inodes: :func:`source_key`) and the
  CRC-32 of its image and mask bytes

A sample is found by its source key, wherever it is stored. So when files change or are
added, only those are decoded again (into a new shard); when a long decode is interrupted,
the shards finished so far are kept and the next load decodes only the rest. Every file is
written atomically and a shard's ``.json`` is written last, so a shard without it does not
exist. A shard none of whose rows the split still uses is removed. Every row read is checked
against its CRC-32, so a file changed or damaged on disk after it was written is never
trained on: its shard is removed (:class:`DamagedCache`) and its images are decoded again, at
once for a split held in RAM, at the next load for one read from disk.

Reading never needs the whole split in memory: :class:`DiskArray` reads the rows a batch asks
for from the ``.npy`` files (plain reads, no memory map, so the process's resident memory does
not grow with the data; the operating system's file cache does the rest).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from helpers.errors import LesionkitError
from helpers.system.atomic import atomic_path, write_text

CACHE_VERSION = 4  # 4: rows with CRC-32s (3: shards of .npy files; 2: one .npz per split)
SHARD_BYTES = 64 * 2**20  # a shard's images and masks, at most (a shard holds at least one row)


class DamagedCache(LesionkitError, OSError):
    """A cached row does not match the CRC-32 written with it; its shard has been removed.
    ``again``: it happened again right after those images were decoded afresh."""

    def __init__(self, path: Path, row: int, again: bool = False) -> None:
        self.path, self.row, self.again = path, row, again
        self.problem = (f"{path}, row {row}: the bytes do not match the checksum written with "
                        "them (the file was changed or damaged on disk)")
        if again:
            advice = ("It happened again right after its images were decoded afresh, so "
                      "something keeps changing that folder (a sync tool, a failing disk): "
                      "set LESIONKIT_CACHE to a folder elsewhere and load the data again.")
        else:
            advice = "Load the data again to decode those images again."
        super().__init__(f"{self.problem}. Its shard has been removed. {advice}")

    def __reduce__(self) -> tuple:  # for worker processes: rebuilt from the same arguments
        return DamagedCache, (self.path, self.row, self.again)


def row_checksums(array: np.ndarray) -> list[int]:
    """The CRC-32 of each row's bytes (what a shard's index records for its rows)."""
    return [zlib.crc32(np.ascontiguousarray(row)) for row in array]


class NpyRows:
    """One ``.npy`` file whose rows (along the first axis) are read only when asked for; with
    ``checksums`` (a CRC-32 per row) every row read is checked against its own."""

    def __init__(self, path: Path, checksums: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        self.checksums = checksums
        with open(self.path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            self.offset = file.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError(f"{self.path} is not a C-ordered array of rows")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self.offset + shape[0] * self.row_bytes
        actual = self.path.stat().st_size
        if actual != expected:
            raise ValueError(f"{self.path} has {actual} bytes, not {expected} (truncated?)")

    def read(self, file: BinaryIO, first: int, out: np.ndarray) -> None:
        """Rows ``first, first + 1, ...`` into ``out`` (as many as it holds), from ``file``
        (this file, opened by the caller). A row that does not match its checksum removes
        the shard it belongs to and raises :class:`DamagedCache`."""
        view = memoryview(out).cast("B")
        file.seek(self.offset + first * self.row_bytes)
        done = 0
        while done < len(view):
            got = file.readinto(view[done:])
            if not got:
                raise OSError(f"{self.path} ended early (changed while in use?)")
            done += got
        if self.checksums is None:
            return
        for number, (row, expected) in enumerate(
                zip(row_checksums(out), self.checksums[first:first + len(out)], strict=True)):
            if row != expected:
                remove_shard(self.path.parent, self.path.name.split(".")[0])
                raise DamagedCache(self.path, first + number)


class DiskArray:
    """An (N, ...) array whose rows live in ``.npy`` files and are read when indexed.

    ``array[i]`` is one row, ``array[rows]`` (a slice, a list, a NumPy or torch index array,
    a boolean mask) the stacked rows, in that order; ``np.asarray(array)`` reads everything.
    Only rows can be indexed (``array[i][y, x]``, not ``array[i, y, x]``). Only the rows asked
    for are ever in memory, so a split may be larger than the RAM. Every read opens the files
    it needs afresh, so threads and worker processes may share a DiskArray.
    """

    def __init__(self, files: Sequence[NpyRows], where: np.ndarray) -> None:
        self.files = list(files)
        self.where = np.asarray(where, dtype=np.int64).reshape(-1, 2)  # (file, row) per row
        first = self.files[0]
        self.row_shape, self.dtype = first.shape[1:], first.dtype

    def __len__(self) -> int:
        return len(self.where)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self.files[0].row_bytes

    def rows_of(self, key: object) -> np.ndarray:
        """The row numbers ``key`` selects, as NumPy would select them (negative numbers count
        from the end, a boolean mask picks the rows where it is true)."""
        if isinstance(key, tuple):
            raise TypeError("a DiskArray is indexed by rows only: array[rows], then index "
                            "the rows it returns")
        if not isinstance(key, slice):
            key = np.asarray(key)
            if key.size == 0:
                key = key.astype(np.int64)  # [] would be a float array
        return np.arange(len(self))[key]

    def __getitem__(self, key: object) -> np.ndarray:
        rows = self.rows_of(key)
        if rows.ndim == 0:  # one row: an int, a NumPy or a 0-d torch integer
            return self.read(rows.reshape(1))[0]
        return self.read(rows)

    def take(self, indices: object) -> DiskArray:
        """A DiskArray of the rows at ``indices``, nothing read yet."""
        return DiskArray(self.files, self.where[self.rows_of(indices)])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows numbered ``rows``, stacked. Rows that lie next to each other in one file
        are read in one go."""
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        if not len(rows):
            return out
        targets = self.where[rows]
        order = np.lexsort((targets[:, 1], targets[:, 0]))  # by file, then row
        ordered = targets[order]
        # a run of rows ends where the file changes or the next row is not the following one
        ends = np.flatnonzero((np.diff(ordered[:, 0]) != 0) | (np.diff(ordered[:, 1]) != 1)) + 1
        with contextlib.ExitStack() as stack:
            opened: dict[int, BinaryIO] = {}
            for start, end in zip([0, *ends], [*ends, len(order)], strict=True):
                file, first = (int(v) for v in ordered[start])
                if file not in opened:
                    opened[file] = stack.enter_context(open(self.files[file].path, "rb"))
                block = np.empty((end - start, *self.row_shape), self.dtype)
                self.files[file].read(opened[file], first, block)
                out[order[start:end]] = block
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self.read(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"DiskArray(shape={self.shape}, dtype={self.dtype}, files={len(self.files)})"


def row_blocks(array: np.ndarray | DiskArray, rows: int = 256) -> Iterator[np.ndarray]:
    """``array`` in order, ``rows`` rows at a time, in RAM or on disk alike."""
    for first in range(0, len(array), rows):
        yield np.ascontiguousarray(array[first:first + rows])


def array_chunks(array: np.ndarray | DiskArray, rows: int = 256) -> Iterator[bytes]:
    """The bytes of ``array`` in order, a block of rows at a time (for hashing big arrays)."""
    for block in row_blocks(array, rows):
        yield block.tobytes()


def source_key(image_path: Path, mask_path: Path) -> str:
    """What a cached sample was decoded from: both files' paths, sizes, modification times,
    inode numbers and status-change times. A changed file changes its key, and the sample is
    decoded again; the last two catch a file replaced by one of the same size whose
    modification time was set back (``cp -p``, ``rsync -a``, ``tar -x``), which the operating
    system does not let a program set."""
    parts = []
    for path in (image_path, mask_path):
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino,
                      stat.st_ctime_ns])
    return json.dumps(parts)


def path_label(folder: Path) -> str:
    """``folder``'s absolute path as one file name (what is not a letter, a digit, ``_``, ``.``
    or ``-`` becomes ``_``): the readable part of a cache folder's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().as_posix().strip("/"))


def rows_per_shard(size: int) -> int:
    """How many samples of ``size``×``size`` fit in one shard (at least one)."""
    return max(1, SHARD_BYTES // (size * size * 4))


@dataclass
class Shard:
    """One shard's arrays and, per row, its id, source key and original size."""

    images: NpyRows
    masks: NpyRows
    rows: list[dict]


@dataclass
class Found:
    """The cached samples of a split: where each key is, and what is missing."""

    images: DiskArray | None
    masks: DiskArray | None
    original_sizes: np.ndarray
    missing: list[int]  # positions (in the keys asked for) not in the cache


class SplitCache:
    """The shards of one split at one size, in ``folder``."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder, self.size = Path(folder), size
        self.used: set[str] | None = None  # set by a find() that found every key

    def check_writable(self) -> None:
        """Make the folder and write a file there; raises OSError if that cannot be done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.folder):
            pass

    def _read_shard(self, name: str) -> Shard | None:
        """One shard, checked; None if it belongs to another cache version or size (it is
        not used, and a sweep removes it). A damaged shard raises."""
        index = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
        if index.get("version") != CACHE_VERSION or index.get("size") != self.size:
            return None
        rows, size = index["rows"], self.size
        for row in rows:
            if not (isinstance(row["id"], str) and isinstance(row["source"], str)
                    and len(row["original_size"]) == 2
                    and all(isinstance(v, int) for v in row["original_size"])
                    and len(row["crc32"]) == 2 and all(isinstance(v, int) for v in row["crc32"])):
                raise ValueError("a row of its index is not (id, source, original size, "
                                 f"checksums): {row}")
        images = NpyRows(self.folder / f"{name}.images.npy", [r["crc32"][0] for r in rows])
        masks = NpyRows(self.folder / f"{name}.masks.npy", [r["crc32"][1] for r in rows])
        n = len(rows)
        if (images.shape != (n, size, size, 3) or masks.shape != (n, size, size)
                or images.dtype != np.uint8 or masks.dtype != np.uint8):
            raise ValueError(f"arrays of shape {images.shape} and {masks.shape} for {n} rows "
                             f"of {size}x{size}")
        return Shard(images, masks, rows)

    def _shards(self) -> dict[str, Shard]:
        """The readable shards by name; a damaged one is reported, removed and ignored."""
        shards = {}
        for index_path in sorted(self.folder.glob("shard-*.json")):
            name = index_path.name[: -len(".json")]
            try:
                shard = self._read_shard(name)
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            except (OSError, ValueError, KeyError, TypeError) as error:
                warnings.warn(f"Cache shard {self.folder / name} is unreadable "
                              f"({type(error).__name__}: {error}); decoding its images again",
                              stacklevel=4)
                self._remove(name)
                continue
            if shard is not None:
                shards[name] = shard
        return shards

    def find(self, keys: list[str]) -> Found:
        """The cached rows of ``keys`` (in that order), and the positions of those not cached."""
        if not self.folder.is_dir():
            return Found(None, None, np.zeros((len(keys), 2), np.int64), list(range(len(keys))))
        shards = self._shards()
        names = list(shards)
        location: dict[str, tuple[int, int, list[int]]] = {}
        for number, name in enumerate(names):
            for row, entry in enumerate(shards[name].rows):
                location[entry["source"]] = (number, row, entry["original_size"])
        where = np.zeros((len(keys), 2), np.int64)  # (shard, row) of each key
        sizes = np.zeros((len(keys), 2), np.int64)
        missing = []
        for position, key in enumerate(keys):
            if key in location:
                shard, row, original = location[key]
                where[position], sizes[position] = (shard, row), original
            else:
                missing.append(position)
        # what a sweep may remove: only once the split is complete, the shards it does not use
        self.used = None if missing else {names[s] for s in set(where[:, 0].tolist())}
        if not names:
            return Found(None, None, sizes, missing)
        return Found(DiskArray([shards[n].images for n in names], where),
                     DiskArray([shards[n].masks for n in names], where), sizes, missing)

    def add(self, entries: list[dict], images: np.ndarray, masks: np.ndarray) -> None:
        """Write one shard: ``entries`` (id, source, original_size per row) and its arrays;
        the index last, so that a shard without one does not exist."""
        entries = [{**entry, "crc32": list(crcs)} for entry, crcs in
                   zip(entries, zip(row_checksums(images), row_checksums(masks), strict=True),
                       strict=True)]
        sources = "\n".join([str(CACHE_VERSION), *(e["source"] for e in entries)])
        name = f"shard-{hashlib.sha256(sources.encode()).hexdigest()[:20]}"
        for part, array in (("images", images), ("masks", masks)):
            with atomic_path(self.folder / f"{name}.{part}.npy") as tmp:
                np.save(tmp, array)
        write_text(self.folder / f"{name}.json", json.dumps(
            {"version": CACHE_VERSION, "size": self.size, "rows": entries}))

    def sweep(self) -> None:
        """Remove the shards that the last :meth:`find`, which found every key, did not use;
        and arrays left without an index (a crash while writing, a removal that failed) once
        they are an hour old. Never another process's temporary files (names with a dot)."""
        if self.used is None:
            return
        for index_path in self.folder.glob("shard-*.json"):
            name = index_path.name[: -len(".json")]
            if name not in self.used:
                self._remove(name)
        an_hour_ago = time.time() - 3600
        for array in self.folder.glob("shard-*.npy"):
            index = self.folder / f"{array.name.split('.')[0]}.json"
            with contextlib.suppress(OSError):
                if not index.exists() and array.stat().st_mtime < an_hour_ago:
                    array.unlink()

    def _remove(self, name: str) -> None:
        remove_shard(self.folder, name)


def remove_shard(folder: Path, name: str) -> None:
    """Remove the shard ``name`` in ``folder``. The index first: without it the shard is gone
    at once, even if an array cannot be removed yet (on Windows, while another process reads
    it; a later sweep will)."""
    for suffix in (".json", ".images.npy", ".masks.npy"):
        with contextlib.suppress(OSError):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
