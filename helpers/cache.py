"""The decode cache: resized uint8 images and masks on disk, in shards, read back by rows.

Decoding and resizing JPEGs is the slow part of loading a split, so it is done once. Each
split and size has a folder ``<cache_dir>/<split>-<size>/`` of *shards*; a shard holds up to
:data:`SHARD_BYTES` of samples as three files:

* ``shard-<key>.images.npy``  (n, S, S, 3) uint8
* ``shard-<key>.masks.npy``   (n, S, S) uint8, values {0, 1}
* ``shard-<key>.json``        for each row: the sample's id, original size and *source key*
  (its image and mask files' paths, sizes and modification times)

A sample is found by its source key, wherever it is stored. So when files change or are
added, only those are decoded again (into a new shard); when a long decode is interrupted,
the shards finished so far are kept and the next load decodes only the rest. Every file is
written atomically and a shard's ``.json`` is written last, so a shard without it does not
exist. A shard none of whose rows the split still uses is removed.

Reading never needs the whole split in memory: :class:`DiskArray` reads the rows a batch asks
for from the ``.npy`` files (plain reads, no memory map, so the process's resident memory does
not grow with the data; the operating system's file cache does the rest).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.atomic import atomic_path, write_text

CACHE_VERSION = 3  # 3: shards of .npy files (2: one .npz per split; 1: masks read differently)
SHARD_BYTES = 64 * 2**20  # a shard's images and masks, at most (a shard holds at least one row)


class NpyRows:
    """One ``.npy`` file whose rows (along the first axis) are read only when asked for."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: io.FileIO | None = None
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

    def read(self, first: int, count: int, out: np.ndarray) -> None:
        """Rows ``first .. first + count - 1`` into ``out`` (contiguous, ``count`` rows)."""
        if self._file is None:  # opened once and kept: a removed file stays readable (POSIX)
            self._file = io.FileIO(self.path, "r")
        view = memoryview(out).cast("B")
        self._file.seek(self.offset + first * self.row_bytes)
        done = 0
        while done < len(view):
            got = self._file.readinto(view[done:])
            if not got:
                raise OSError(f"{self.path} ended early (changed while in use?)")
            done += got

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    __del__ = close

    def __getstate__(self) -> dict:  # a copy opens its own file
        return {**self.__dict__, "_file": None}


class DiskArray:
    """An (N, ...) array whose rows live in ``.npy`` files and are read when indexed.

    ``array[i]`` is one row, ``array[indices]`` (a slice, a list, a NumPy or torch index
    array) the stacked rows, in that order; ``np.asarray(array)`` reads everything. Only the
    rows asked for are ever in memory, so a split may be larger than the RAM.
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
        """The row numbers ``key`` selects (negative and boolean indexing as in NumPy)."""
        return np.arange(len(self))[np.asarray(key) if not isinstance(key, slice) else key]

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(self.rows_of(key).reshape(1))[0]
        return self.read(self.rows_of(key))

    def take(self, indices: object) -> DiskArray:
        """A DiskArray of the rows at ``indices``, nothing read yet."""
        return DiskArray(self.files, self.where[self.rows_of(indices)])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows numbered ``rows``, stacked. Rows next to each other in one file are read in
        one go."""
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        targets = self.where[rows]
        order = np.lexsort((targets[:, 1], targets[:, 0]))  # by file, then row
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and targets[order[end], 0] == targets[order[start], 0]
                   and targets[order[end], 1] == targets[order[end - 1], 1] + 1):
                end += 1
            file, first = targets[order[start]]
            block = np.empty((end - start, *self.row_shape), self.dtype)
            self.files[file].read(int(first), end - start, block)
            out[order[start:end]] = block
            start = end
        return out

    def chunks(self, rows: int = 256) -> Iterator[np.ndarray]:
        """The array in order, ``rows`` rows at a time."""
        for first in range(0, len(self), rows):
            yield self.read(np.arange(first, min(first + rows, len(self))))

    def close(self) -> None:
        """Close the files (reading again reopens them)."""
        for file in self.files:
            file.close()

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self.read(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"DiskArray(shape={self.shape}, dtype={self.dtype}, files={len(self.files)})"


def row_blocks(array: np.ndarray | DiskArray, rows: int = 256) -> Iterator[np.ndarray]:
    """``array`` in order, ``rows`` rows at a time, in RAM or on disk alike."""
    if isinstance(array, DiskArray):
        yield from array.chunks(rows)
    else:
        for first in range(0, len(array), rows):
            yield np.ascontiguousarray(array[first:first + rows])


def array_chunks(array: np.ndarray | DiskArray, rows: int = 256) -> Iterator[bytes]:
    """The bytes of ``array`` in order, a block of rows at a time (for hashing big arrays)."""
    for block in row_blocks(array, rows):
        yield block.tobytes()


def source_key(image_path: Path, mask_path: Path) -> str:
    """What a cached sample was decoded from: both files' paths, sizes and modification times.
    A changed file changes its key, and the sample is decoded again."""
    parts = []
    for path in (image_path, mask_path):
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return json.dumps(parts)


def rows_per_shard(size: int) -> int:
    """How many samples of ``size``×``size`` fit in one shard (at least one)."""
    return max(1, SHARD_BYTES // (size * size * 4))


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

    def _shards(self) -> dict[str, tuple[NpyRows, NpyRows, list[dict]]]:
        """The readable shards by name; a damaged one is reported, removed and ignored."""
        shards = {}
        for index_path in sorted(self.folder.glob("shard-*.json")):
            name = index_path.name[: -len(".json")]
            try:
                index = json.loads(index_path.read_text(encoding="utf-8"))
                images = NpyRows(self.folder / f"{name}.images.npy")
                masks = NpyRows(self.folder / f"{name}.masks.npy")
                rows = index["rows"]
                n, size = len(rows), self.size
                if index["version"] != CACHE_VERSION or index["size"] != size:
                    raise ValueError(f"version {index['version']}, size {index['size']}")
                if (images.shape != (n, size, size, 3) or masks.shape != (n, size, size)
                        or images.dtype != np.uint8 or masks.dtype != np.uint8):
                    raise ValueError(f"arrays of shape {images.shape} and {masks.shape} for "
                                     f"{n} rows of {size}x{size}")
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            except (OSError, ValueError, KeyError, TypeError) as error:
                warnings.warn(f"Cache shard {self.folder / name} is unreadable "
                              f"({type(error).__name__}: {error}); decoding its images again",
                              stacklevel=4)
                self._remove(name)
                continue
            shards[name] = (images, masks, rows)
        return shards

    def find(self, keys: list[str]) -> Found:
        """The cached rows of ``keys`` (in that order), and the positions of those not cached."""
        if not self.folder.is_dir():
            return Found(None, None, np.zeros((len(keys), 2), np.int64), list(range(len(keys))))
        shards = self._shards()
        names = list(shards)
        location: dict[str, tuple[int, int, list[int]]] = {}
        for number, name in enumerate(names):
            for row, entry in enumerate(shards[name][2]):
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
        return Found(DiskArray([shards[n][0] for n in names], where),
                     DiskArray([shards[n][1] for n in names], where), sizes, missing)

    def add(self, entries: list[dict], images: np.ndarray, masks: np.ndarray) -> None:
        """Write one shard: ``entries`` (id, source, original_size per row) and its arrays."""
        key = hashlib.sha256("\n".join(e["source"] for e in entries).encode()).hexdigest()[:20]
        name = f"shard-{key}"
        for part, array in (("images", images), ("masks", masks)):
            with atomic_path(self.folder / f"{name}.{part}.npy") as tmp:
                np.save(tmp, array)
        write_text(self.folder / f"{name}.json", json.dumps(
            {"version": CACHE_VERSION, "size": self.size, "rows": entries}))

    def sweep(self) -> None:
        """Remove the shards that the last :meth:`find`, which found every key, did not use
        (never temporary files, which start with a dot)."""
        if self.used is None:
            return
        for index_path in self.folder.glob("shard-*.json"):
            name = index_path.name[: -len(".json")]
            if name not in self.used:
                self._remove(name)

    def _remove(self, name: str) -> None:
        for suffix in (".json", ".images.npy", ".masks.npy"):  # the index first
            with contextlib.suppress(OSError):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)
