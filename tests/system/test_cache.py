"""The decode cache: reuse, incremental rebuild, interrupted decodes, damaged files, parallel
decoding, and splits read from disk batch by batch."""

from __future__ import annotations

import os
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import helpers.data as dataset
import helpers.decode as decoding
import helpers.system.cache as cache_module
from helpers.batches import TensorSet
from helpers.config import TrainConfig
from helpers.decode import load_split
from helpers.errors import DatasetError
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.model import build_model
from helpers.runs.folder import data_fingerprint
from helpers.system.cache import DiskArray
from helpers.system.cache_migration import legacy_cache_name
from helpers.train import fit


@pytest.fixture
def copy_root(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the synthetic data set."""
    target = tmp_path / "data"
    shutil.copytree(synthetic_root, target)
    return target


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The ids :func:`helpers.data.load_pair` decodes from now on (in this process), as
    :mod:`helpers.decode` calls it."""
    ids: list[str] = []
    original = decoding.load_pair

    def counting(pair, size):
        ids.append(pair.id)
        return original(pair, size)

    monkeypatch.setattr(decoding, "load_pair", counting)
    return ids


def shards(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/shard-*.json"))


def load(layout, cache: Path, **options):
    return load_split(layout, size=64, cache_dir=cache, progress=False, **options)


def test_a_second_load_decodes_nothing(copy_root: Path, tmp_path: Path, decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    assert len(decoded) == 8
    again = load(layout, tmp_path)
    assert len(decoded) == 8
    assert np.array_equal(first.images, again.images)
    assert np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.original_sizes, again.original_sizes)


def test_a_changed_file_alone_is_decoded_again(copy_root: Path, tmp_path: Path,
                                               decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    Image.new("RGB", (192, 160), (10, 200, 30)).save(first.image_paths[3])
    decoded.clear()
    again = load(layout, tmp_path)
    assert decoded == [first.ids[3]]
    assert tuple(again.images[3, 0, 0]) == (10, 200, 30)
    others = [i for i in range(8) if i != 3]
    assert np.array_equal(again.images[others], first.images[others])


def test_an_added_pair_alone_is_decoded(copy_root: Path, tmp_path: Path, decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    shutil.copy(first.image_paths[0], layout.images_dir / "SYNTH_0000.jpg")
    shutil.copy(first.mask_paths[0], layout.masks_dir / "SYNTH_0000_Segmentation.png")
    decoded.clear()
    again = load(layout, tmp_path)
    assert decoded == ["SYNTH_0000"] and again.ids[0] == "SYNTH_0000"
    assert np.array_equal(again.images[1:], first.images)
    assert np.array_equal(again.images[0], first.images[0])


def test_an_interrupted_decode_keeps_its_finished_shards(copy_root: Path, tmp_path: Path,
                                                         decoded, monkeypatch) -> None:
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 3 * 64 * 64 * 4)  # 3 images a shard
    layout = isic2016_split(copy_root, "test")
    counting = decoding.load_pair

    def interrupted_at_the_fifth(pair, size):
        if len(decoded) == 4:
            raise KeyboardInterrupt
        return counting(pair, size)

    monkeypatch.setattr(decoding, "load_pair", interrupted_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        load(layout, tmp_path)
    assert len(shards(tmp_path)) == 1  # images 1-3; the fourth was not in a finished shard
    monkeypatch.setattr(decoding, "load_pair", counting)
    decoded.clear()
    data = load(layout, tmp_path)
    assert decoded == data.ids[3:]
    reference = load(layout, tmp_path / "fresh")
    assert np.array_equal(data.images, reference.images)


def test_shards_no_longer_used_are_removed_but_not_temporary_files(copy_root: Path,
                                                                   tmp_path: Path) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    [old] = shards(tmp_path)
    foreign_tmp = old.parent / f".{old.stem}.images.k3j2h1.tmp.npy"  # another process's
    foreign_tmp.write_bytes(b"half written")
    legacy = tmp_path / f"{legacy_cache_name(layout.images_dir)}-64"  # superseded formats
    version_2 = legacy.parent / f"{legacy.name}-0123456789abcdef0123.npz"
    version_2.write_bytes(b"a cache of the previous version")
    legacy.mkdir()
    (legacy / "shard-0.json").write_text("{}")
    for path in first.image_paths:  # every image changes: no row of the old shard is used
        os.utime(path, ns=(1, 1))
    load(layout, tmp_path)
    assert old not in shards(tmp_path) and len(shards(tmp_path)) == 1
    assert not list(old.parent.glob(f"{old.stem}.*.npy"))
    assert foreign_tmp.read_bytes() == b"half written"
    assert not version_2.exists() and not legacy.exists()


def test_two_layouts_sharing_an_images_folder_keep_their_own_caches(copy_root: Path,
                                                                    tmp_path: Path,
                                                                    decoded) -> None:
    first = isic2016_split(copy_root, "test")
    other_masks = copy_root / "other_masks"
    shutil.copytree(first.masks_dir, other_masks)
    second = dataset.SplitLayout(first.images_dir, other_masks, first.mask_pattern)
    for layout in (first, second):
        load(layout, tmp_path)
    decoded.clear()
    for layout in (first, second, first):
        load(layout, tmp_path)
    assert decoded == []  # before, each load's sweep removed the other's shards
    assert len(shards(tmp_path)) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "index"])
def test_a_damaged_shard_is_decoded_again_with_a_warning(copy_root: Path, tmp_path: Path,
                                                         damage: str, decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    [index] = shards(tmp_path)
    target = index if damage == "index" else index.with_suffix(".images.npy")
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage" * 99)
    decoded.clear()
    with pytest.warns(UserWarning, match=f"Cache shard {index.with_suffix('')} is unreadable"):
        again = load(layout, tmp_path)
    assert len(decoded) == 8
    assert np.array_equal(again.images, first.images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(layout, tmp_path)  # rewritten: no warning, nothing decoded
    assert len(decoded) == 8


def change_a_byte(array_file: Path, row: int) -> None:
    """Change one byte in ``row`` of a cached ``.npy`` file, in place (the size stays)."""
    rows = cache_module.NpyRows(array_file)
    with open(array_file, "r+b") as file:
        file.seek(rows.offset + row * rows.row_bytes + rows.row_bytes // 2)
        value = file.read(1)[0]
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([value ^ 0x01]))


@pytest.mark.parametrize("part", ["images", "masks"])
def test_a_cached_row_changed_on_disk_is_found_and_decoded_again(copy_root: Path,
                                                                  tmp_path: Path, part: str,
                                                                  decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    [index] = shards(tmp_path)
    array_file = index.with_suffix(f".{part}.npy")
    change_a_byte(array_file, row=5)
    decoded.clear()
    with pytest.warns(UserWarning, match=f"Cache file {array_file}, row 5: the bytes do not "
                                         "match the checksum"):
        again = load(layout, tmp_path)
    assert len(decoded) == 8  # its shard, decoded again
    assert np.array_equal(again.images, first.images)
    assert np.array_equal(again.masks, first.masks)


def test_a_changed_row_of_a_split_on_disk_stops_naming_the_file(copy_root: Path,
                                                                tmp_path: Path,
                                                                decoded) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    on_disk = load(layout, tmp_path, in_memory_gb=0)
    [index] = shards(tmp_path)
    change_a_byte(index.with_suffix(".images.npy"), row=2)
    assert np.array_equal(on_disk.images[[0, 1]], first.images[[0, 1]])  # rows unchanged
    with pytest.raises(cache_module.DamagedCache, match=r"images\.npy, row 2: the bytes do "
                                                        "not match.*Load the data again"):
        on_disk.images[[1, 2]]
    assert not shards(tmp_path)  # removed: the next load decodes its images again
    decoded.clear()
    again = load(layout, tmp_path)
    assert len(decoded) == 8 and np.array_equal(again.images, first.images)


def test_damage_that_comes_back_after_decoding_afresh_stops_with_advice(
        copy_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add = cache_module.SplitCache.add

    def add_then_damage(store, entries, images, masks) -> None:  # as a failing disk would
        add(store, entries, images, masks)
        newest = max(store.folder.glob("shard-*.images.npy"), key=lambda f: f.stat().st_mtime_ns)
        change_a_byte(newest, row=0)

    monkeypatch.setattr(cache_module.SplitCache, "add", add_then_damage)
    with pytest.warns(UserWarning, match="Cache file .*row 0: the bytes do not match"), \
            pytest.raises(cache_module.DamagedCache, match="happened again.*LESIONKIT_CACHE"):
        load(isic2016_split(copy_root, "test"), tmp_path)


def test_a_damaged_cache_error_survives_pickling(tmp_path: Path) -> None:
    error = cache_module.DamagedCache(tmp_path / "shard-1.images.npy", 3, again=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.row, copy.again) == (str(error), error.path, 3, True)


def test_an_unwritable_cache_folder_warns_and_loads_without_it(copy_root: Path,
                                                               tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    cache = blocker / "cache"
    with pytest.warns(UserWarning, match=f"Cannot write the decode cache in {cache}") as caught:
        data = load(isic2016_split(copy_root, "test"), cache)
    assert len(caught) == 1
    assert len(data) == 8 and data.masks.any(axis=(1, 2)).all()


def test_a_file_vanishing_during_the_sweep_is_tolerated(copy_root: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load(layout, tmp_path)
    [stale] = shards(tmp_path)
    original_unlink = Path.unlink

    def removed_by_another_process_first(self: Path, missing_ok: bool = False) -> None:
        if self == stale:
            original_unlink(self)  # the other process wins the race
        original_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", removed_by_another_process_first)
    for path in first.image_paths:
        os.utime(path, ns=(1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load(layout, tmp_path)
    assert len(data) == 8 and not stale.exists() and len(shards(tmp_path)) == 1


def test_two_threads_loading_one_split_at_once_agree(copy_root: Path, tmp_path: Path) -> None:
    layout, cache = isic2016_split(copy_root, "train"), tmp_path / "cache"
    results: dict[int, object] = {}

    def load_in_thread(worker: int) -> None:
        try:
            results[worker] = load(layout, cache)
        except Exception as error:  # noqa: BLE001 - reported below
            results[worker] = error

    for _ in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        threads = [threading.Thread(target=load_in_thread, args=(w,)) for w in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first, second = results[0], results[1]
        assert isinstance(first, dataset.SegmentationSet), first
        assert isinstance(second, dataset.SegmentationSet), second
        assert np.array_equal(first.images, second.images)
        assert len(shards(cache)) == 1


def test_decoding_in_threads_gives_the_same_arrays(copy_root: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    monkeypatch.setattr(decoding, "PARALLEL_MIN_IMAGES", 1)
    layout = isic2016_split(copy_root, "train")
    alone = load(layout, tmp_path / "one", workers=1)
    parallel = load(layout, tmp_path / "two", workers=2)
    assert alone.ids == parallel.ids
    assert np.array_equal(alone.images, parallel.images)
    assert np.array_equal(alone.masks, parallel.masks)
    assert np.array_equal(alone.original_sizes, parallel.original_sizes)


def test_decoding_threads_pass_on_errors_and_warnings(copy_root: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(decoding, "PARALLEL_MIN_IMAGES", 1)
    layout = isic2016_split(copy_root, "train")
    dot = np.zeros((160, 192), np.uint8)
    dot[80:83, 90:93] = 255  # vanishes at 32x32, and is tiny: a warning
    Image.fromarray(dot).save(layout.masks_dir / "SYNTH_0012_Segmentation.png")
    with pytest.warns(UserWarning, match=r"SYNTH_0012_Segmentation\.png has a lesion of 9 "):
        load_split(layout, size=32, cache_dir=tmp_path, progress=False, workers=2)
    (layout.images_dir / "SYNTH_0005.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"Cannot read image .*SYNTH_0005\.jpg"):
        load(layout, tmp_path, workers=2)


def test_a_split_on_disk_reads_like_one_in_memory(synthetic_root: Path, tmp_path: Path) -> None:
    layout = isic2016_split(synthetic_root, "train")
    in_memory = load(layout, tmp_path)
    on_disk = load(layout, tmp_path, in_memory_gb=0)
    assert isinstance(on_disk.images, DiskArray) and isinstance(in_memory.images, np.ndarray)
    assert on_disk.images.shape == in_memory.images.shape and on_disk.image_size == 64
    for key in (5, -1, slice(2, 9, 3), [7, 0, 7], np.array([3, 1]), torch.tensor([4, 2])):
        assert np.array_equal(on_disk.images[key], in_memory.images[key]), key
        assert np.array_equal(on_disk.masks[key], in_memory.masks[key]), key
    assert np.array_equal(on_disk.coverage(), in_memory.masks.mean(axis=(1, 2)))
    part = on_disk.subset([9, 4, 11])
    assert isinstance(part.images, DiskArray)
    assert np.array_equal(np.asarray(part.images), in_memory.images[[9, 4, 11]])
    index = torch.tensor([6, 1, 20])
    for got, expected in zip(TensorSet(on_disk).batch(index), TensorSet(in_memory).batch(index),
                             strict=True):
        assert torch.equal(got, expected)


def test_training_from_disk_gives_the_same_history_and_fingerprint(synthetic_root: Path,
                                                                   tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=6, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3)
    histories, prints = [], []
    for name, limit in (("memory", 4.0), ("disk", 0.0)):
        splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25,
                               cache_dir=tmp_path / "cache", in_memory_gb=limit)
        assert isinstance(splits.train.images, DiskArray) == (limit == 0)
        prints.append(data_fingerprint(splits.train, splits.val, True))
        histories.append(fit(build_model(config), splits.train, splits.val, config,
                             tmp_path / name, progress=False).drop(columns="seconds"))
    assert prints[0] == prints[1]
    assert histories[0].equals(histories[1])


def test_rows_spread_over_many_shards_read_back_in_any_order(synthetic_root: Path,
                                                             tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 5 * 64 * 64 * 4)  # 5 images a shard
    layout = isic2016_split(synthetic_root, "train")
    in_memory = load(layout, tmp_path)
    on_disk = load(layout, tmp_path, in_memory_gb=0)
    assert len(on_disk.images.files) == 5  # 24 images
    order = np.random.default_rng(0).permutation(24)
    for rows in (order, np.concatenate([order[:7], order[:7]]), np.arange(24)[::-1]):
        assert np.array_equal(on_disk.images[rows], in_memory.images[rows])
        assert np.array_equal(on_disk.masks[rows], in_memory.masks[rows])


def test_a_disk_array_is_indexed_by_rows_only(synthetic_root: Path, tmp_path: Path) -> None:
    layout = isic2016_split(synthetic_root, "test")
    in_memory = load(layout, tmp_path)
    images = load(layout, tmp_path, in_memory_gb=0).images
    assert np.array_equal(images[torch.tensor(3)], in_memory.images[3])
    assert np.array_equal(images[np.int64(-2)], in_memory.images[-2])
    assert images[[]].shape == (0, 64, 64, 3)
    mask = np.zeros(8, bool)
    mask[[1, 6]] = True
    assert np.array_equal(images[mask], in_memory.images[mask])
    with pytest.raises(TypeError, match="indexed by rows only"):
        images[3, 10, 20]
    with pytest.raises(IndexError):
        images[8]


def test_an_error_while_workers_decode_stops_them_without_decoding_the_rest(
        copy_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(decoding, "PARALLEL_MIN_IMAGES", 1)
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 3 * 64 * 64 * 4)  # 3 images a shard
    submitted, shut_down = [], []
    executor = decoding.ThreadPoolExecutor
    original_submit, original_shutdown = executor.submit, executor.shutdown
    monkeypatch.setattr(executor, "submit", lambda self, *a, **k: submitted.append(a[1].id)
                        or original_submit(self, *a, **k))
    monkeypatch.setattr(executor, "shutdown", lambda self, *a, **k: shut_down.append(True)
                        or original_shutdown(self, *a, **k))

    def disk_full(self, *args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.SplitCache, "add", disk_full)
    with pytest.raises(OSError, match="No space left"):
        load(isic2016_split(copy_root, "train"), tmp_path, workers=2)
    assert shut_down
    assert len(submitted) <= 3 + 4 * 2 + 1 < 24  # a few images ahead, not the whole split


def test_evaluation_helpers_accept_masks_on_disk(synthetic_root: Path, tmp_path: Path) -> None:
    from helpers.evaluate import choose_threshold
    from helpers.metrics import score_table
    from helpers.zoomout import zoom_out_set

    layout = isic2016_split(synthetic_root, "test")
    in_memory = load(layout, tmp_path)
    on_disk = load(layout, tmp_path, in_memory_gb=0)
    probs = np.random.default_rng(1).random(in_memory.masks.shape, dtype=np.float32)
    assert choose_threshold(probs, on_disk.masks)[0] == choose_threshold(probs,
                                                                         in_memory.masks)[0]
    assert score_table(probs, on_disk.masks).equals(score_table(probs, in_memory.masks))
    zoomed_disk, zoomed_memory = zoom_out_set(on_disk, 0.6), zoom_out_set(in_memory, 0.6)
    assert np.array_equal(zoomed_disk.images, zoomed_memory.images)
    assert np.array_equal(zoomed_disk.masks, zoomed_memory.masks)
