"""Loading a split: its pairs decoded once, in parallel, into the decode cache.

:func:`load_split` decodes and resizes every pair of a split (:func:`helpers.data.load_pair`)
into the cache of :mod:`helpers.system.cache`, keyed by each source file's name, size and
modification time: a changed or added file is decoded again, alone. Later epochs, notebooks
and runs load a split in a fraction of a second. A split larger than ``in_memory_gb`` (a
setting) stays on disk and is read batch by batch. From 64 images on, a thread per core
decodes (:func:`_decoding`).

* Every cached row is checked against the CRC-32 written with it: a row changed on disk is
  never used, and its images are decoded again (:mod:`helpers.system.cache`).
* An unreadable cache file is a cache miss (with a warning) and its images are decoded again;
  an unwritable cache folder gives a warning and the split is used without a cache. Removing
  unused cache files never touches another process's temporary file.
* Each layout (images folder, masks folder, mask pattern) has a cache folder of its own per
  size (:func:`_cache_name`). Loading a split removes its caches in superseded formats
  (:mod:`helpers.system.cache_migration`).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.data import Pair, SegmentationSet, SplitLayout, find_pairs, load_pair
from helpers.paths import REPO_ROOT, SYNTHETIC_MARKER
from helpers.system.cache import (
    DamagedCache,
    Found,
    SplitCache,
    path_label,
    rows_per_shard,
    source_key,
)
from helpers.system.cache_migration import remove_old_caches

#: Splits whose arrays take at most this many GiB are held in RAM (the presets' ``in_memory_gb``).
IN_MEMORY_LIMIT_GB = 4.0
#: Fewer images than this are decoded by one thread (not worth the others' bookkeeping).
PARALLEL_MIN_IMAGES = 64


def default_cache_dir() -> Path:
    """``$LESIONKIT_CACHE``, else ``data/cache`` in the repository."""
    env = os.environ.get("LESIONKIT_CACHE")
    return Path(env) if env else REPO_ROOT / "data" / "cache"


def default_workers() -> int:
    """Decoding threads: one per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cache_name(layout: SplitLayout) -> str:
    """The readable end of the images folder's path, then a digest of the whole layout
    (images folder, masks folder and mask pattern), so that no two layouts share a cache."""
    layout_id = json.dumps([layout.images_dir.resolve().as_posix(),
                            layout.masks_dir.resolve().as_posix(), layout.mask_pattern])
    digest = hashlib.sha256(layout_id.encode()).hexdigest()[:12]
    return f"{path_label(layout.images_dir)[-60:]}-{digest}"


def load_split(layout: SplitLayout, size: int = 128, cache_dir: str | Path | None = None,
               progress: bool = True, in_memory_gb: float = IN_MEMORY_LIMIT_GB,
               workers: int | None = None) -> SegmentationSet:
    """Load one split resized to ``size``×``size``, decoding only what the cache lacks.

    The arrays are held in RAM when they take at most ``in_memory_gb`` GiB; a larger split
    stays on disk as :class:`~helpers.system.cache.DiskArray` rows, read batch by batch (slower,
    but the data may be larger than the RAM). ``workers``: threads that decode (default: one
    per core).
    """
    if size % 32:
        raise ValueError(f"image size must be a multiple of 32, not {size}")
    pairs = find_pairs(layout)
    workers = default_workers() if workers is None else workers
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = f"{_cache_name(layout)}-{size}"
    synthetic = (layout.images_dir.parent / SYNTHETIC_MARKER).exists()
    common = dict(ids=[p.id for p in pairs], image_paths=[p.image_path for p in pairs],
                  mask_paths=[p.mask_path for p in pairs], synthetic=synthetic)
    desc = f"Decoding {layout.images_dir.name} at {size}px"
    keys = [source_key(p.image_path, p.mask_path) for p in pairs]
    store = SplitCache(cache_dir / stem, size)
    try:
        store.check_writable()
    except OSError as error:
        warnings.warn(f"Cannot write the decode cache in {store.folder} ({error}); going on "
                      "without it (set LESIONKIT_CACHE to a writable folder)", stacklevel=2)
        images, masks, sizes = _decode_in_memory(pairs, size, workers, progress, desc)
        return SegmentationSet(images=images, masks=masks, original_sizes=sizes, **common)
    for attempt in (1, 2):  # twice: a damaged shard found while reading is decoded again
        found = _complete(store, pairs, keys, size, workers, progress, desc)
        images, masks = found.images, found.masks
        if images.nbytes + masks.nbytes > in_memory_gb * 2**30:
            break  # read batch by batch, each row checked as it is read
        try:
            images, masks = np.asarray(images), np.asarray(masks)
            break
        except DamagedCache as error:
            if attempt == 2:
                raise DamagedCache(error.path, error.row, again=True) from error
            warnings.warn(f"Cache file {error.problem}; decoding its images again",
                          stacklevel=2)
        except FileNotFoundError as error:  # another process removed a shard meanwhile
            if attempt == 2:
                raise
            warnings.warn(f"Cache file {error.filename} vanished while it was read; decoding "
                          "its images again", stacklevel=2)
    store.sweep()
    remove_old_caches(cache_dir, layout.images_dir, size)
    return SegmentationSet(images=images, masks=masks, original_sizes=found.original_sizes,
                           **common)


def _complete(store: SplitCache, pairs: list[Pair], keys: list[str], size: int, workers: int,
              progress: bool, desc: str) -> Found:
    """Every key's cached rows in ``store``, after decoding those it lacks."""
    found = store.find(keys)
    for _ in range(2):  # twice: another process may remove shards meanwhile (rare)
        if not found.missing:
            return found
        _decode_into_cache(store, [pairs[i] for i in found.missing],
                           [keys[i] for i in found.missing], size, workers, progress, desc)
        found = store.find(keys)
    if found.missing:
        raise OSError(f"{len(found.missing)} decoded image(s) were removed from the cache "
                      f"{store.folder} as soon as they were written: is another process "
                      "clearing it?")
    return found


def _decode_into_cache(store: SplitCache, pairs: list[Pair], keys: list[str], size: int,
                       workers: int, progress: bool, desc: str) -> None:
    """Decode ``pairs`` and add them to ``store``, one shard at a time (so an interrupted
    decode keeps what it finished)."""
    per_shard = rows_per_shard(size)
    entries: list[dict] = []
    images = np.empty((min(per_shard, len(pairs)), size, size, 3), np.uint8)
    masks = np.empty((len(images), size, size), np.uint8)
    with _decoding(pairs, size, workers) as decoded:
        for i, (image, mask, original) in enumerate(
                tqdm(decoded, total=len(pairs), desc=desc, disable=not progress)):
            row = len(entries)
            images[row], masks[row] = image, mask
            entries.append({"id": pairs[i].id, "source": keys[i],
                            "original_size": list(original)})
            if len(entries) == len(images) or i == len(pairs) - 1:
                store.add(entries, images[: len(entries)], masks[: len(entries)])
                entries = []


def _decode_in_memory(pairs: list[Pair], size: int, workers: int, progress: bool, desc: str
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.empty((len(pairs), size, size, 3), np.uint8)
    masks = np.empty((len(pairs), size, size), np.uint8)
    sizes = np.empty((len(pairs), 2), np.int64)
    with _decoding(pairs, size, workers) as decoded:
        for i, (image, mask, original) in enumerate(
                tqdm(decoded, total=len(pairs), desc=desc, disable=not progress)):
            images[i], masks[i], sizes[i] = image, mask, original
    return images, masks, sizes


@contextlib.contextmanager
def _decoding(pairs: list[Pair], size: int, workers: int
              ) -> Iterator[Iterator[tuple[np.ndarray, np.ndarray, tuple[int, int]]]]:
    """Every pair decoded (:func:`load_pair`), in order.

    With enough pairs, ``workers`` threads decode at once: Pillow decodes and resizes without
    holding Python's global lock, so threads use all cores, with none of the start-up costs
    and pitfalls of worker processes. They never run more than a few images ahead of the
    caller; on leaving (an error and Ctrl-C included) the images not started are dropped.
    """
    if workers <= 1 or len(pairs) < PARALLEL_MIN_IMAGES:
        yield (load_pair(pair, size) for pair in pairs)
        return
    ahead: collections.deque[Future] = collections.deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        def in_order() -> Iterator[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
            waiting = iter(pairs)
            for pair in itertools.islice(waiting, 4 * workers):
                ahead.append(pool.submit(load_pair, pair, size))
            while ahead:
                result = ahead.popleft().result()
                for pair in itertools.islice(waiting, 1):
                    ahead.append(pool.submit(load_pair, pair, size))
                yield result
        try:
            yield in_order()
        finally:
            for future in ahead:
                future.cancel()
