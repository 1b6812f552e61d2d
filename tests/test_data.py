"""Pairing, decoding, caching and the clear errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import helpers.data as dataset
from helpers.data import (
    DatasetError,
    SplitLayout,
    find_pairs,
    isic2016_split,
    load_isic2016,
    load_split,
    train_val_split,
)


@pytest.fixture
def copy_root(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the synthetic data set."""
    target = tmp_path / "data"
    shutil.copytree(synthetic_root, target)
    return target


def train_dirs(root: Path) -> tuple[Path, Path]:
    layout = isic2016_split(root, "train")
    return layout.images_dir, layout.masks_dir


def test_pairs_are_sorted_by_id_and_matched(synthetic_root: Path) -> None:
    pairs = find_pairs(isic2016_split(synthetic_root, "train"))
    ids = [p.id for p in pairs]
    assert ids == sorted(ids) and len(ids) == 24
    for pair in pairs:
        assert pair.mask_path.name == f"{pair.id}_Segmentation.png"
        assert pair.image_path.name == f"{pair.id}.jpg"


def test_load_split_resizes_keeps_original_size_and_binary_masks(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=64, progress=False)
    assert data.images.shape == (8, 64, 64, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (8, 64, 64)
    assert set(np.unique(data.masks)) <= {0, 1}
    assert data.masks.any(axis=(1, 2)).all()
    assert (data.original_sizes == [160, 192]).all()
    assert data.synthetic


def test_cache_is_reused_then_rebuilt_when_a_source_changes(copy_root: Path, monkeypatch) -> None:
    layout = isic2016_split(copy_root, "test")
    first = load_split(layout, size=64, progress=False)
    decoded = []
    original = dataset.load_pair
    monkeypatch.setattr(dataset, "load_pair", lambda *a: decoded.append(a) or original(*a))
    again = load_split(layout, size=64, progress=False)
    assert decoded == [] and np.array_equal(first.images, again.images)

    changed = first.image_paths[0]
    Image.new("RGB", (192, 160), (10, 200, 30)).save(changed)
    rebuilt = load_split(layout, size=64, progress=False)
    assert len(decoded) == 8
    assert tuple(rebuilt.images[0, 0, 0]) != tuple(first.images[0, 0, 0])


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Data folder not found: .*nowhere"):
        load_isic2016(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="Images folder not found: .*Training_Data"):
        load_split(isic2016_split(tmp_path, "train"))


def test_empty_split_is_named(tmp_path: Path) -> None:
    layout = isic2016_split(tmp_path, "train")
    layout.images_dir.mkdir()
    layout.masks_dir.mkdir()
    with pytest.raises(DatasetError, match=f"No images .* in {layout.images_dir}"):
        find_pairs(layout)


def test_image_without_mask_and_mask_without_image_list_the_ids(copy_root: Path) -> None:
    images, masks = train_dirs(copy_root)
    (masks / "SYNTH_0002_Segmentation.png").unlink()
    (images / "SYNTH_0005.jpg").unlink()
    with pytest.raises(DatasetError) as error:
        find_pairs(isic2016_split(copy_root, "train"))
    message = str(error.value)
    assert "1 image(s)" in message and "SYNTH_0002" in message
    assert "1 mask(s)" in message and "SYNTH_0005" in message


def test_corrupt_image_is_named(copy_root: Path) -> None:
    images, _ = train_dirs(copy_root)
    (images / "SYNTH_0003.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(DatasetError, match=r"Cannot read image .*SYNTH_0003\.jpg"):
        load_split(isic2016_split(copy_root, "train"), size=64, progress=False)


def test_truncated_mask_is_named(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    path = masks / "SYNTH_0004_Segmentation.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"Cannot read mask .*SYNTH_0004_Segmentation\.png"):
        load_split(isic2016_split(copy_root, "train"), size=64, progress=False)


def test_mask_of_other_size_names_both_files(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    Image.new("L", (50, 40)).save(masks / "SYNTH_0006_Segmentation.png")
    with pytest.raises(DatasetError, match=r"SYNTH_0006_Segmentation\.png is 50x40 .*"
                                           r"SYNTH_0006\.jpg is 192x160"):
        load_split(isic2016_split(copy_root, "train"), size=64, progress=False)


def test_non_binary_mask_is_named(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    ramp = np.tile(np.linspace(0, 255, 192, dtype=np.uint8), (160, 1))
    Image.fromarray(ramp).save(masks / "SYNTH_0007_Segmentation.png")
    with pytest.raises(DatasetError, match=r"SYNTH_0007_Segmentation\.png is not binary"):
        load_split(isic2016_split(copy_root, "train"), size=64, progress=False)


def test_label_masks_with_values_0_and_1_are_accepted(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    path = masks / "SYNTH_0008_Segmentation.png"
    labels = (np.asarray(Image.open(path)) > 127).astype(np.uint8)
    Image.fromarray(labels).save(path)
    data = load_split(isic2016_split(copy_root, "train"), size=64, progress=False)
    assert data.masks[data.index_of("SYNTH_0008")].sum() > 0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_odd_image_modes_are_converted_to_rgb(copy_root: Path, mode: str) -> None:
    images, _ = train_dirs(copy_root)
    path = images / "SYNTH_0001.jpg"
    converted = Image.open(path).convert(mode)
    target = path.with_suffix(".png") if mode in ("RGBA", "P") else path
    path.unlink()
    converted.save(target)
    data = load_split(isic2016_split(copy_root, "train"), size=64, progress=False)
    assert data.images.shape[-1] == 3
    assert data.images[data.index_of("SYNTH_0001")].mean() > 20


def test_unsupported_mode_is_named(copy_root: Path) -> None:
    images, _ = train_dirs(copy_root)
    path = images / "SYNTH_0009.jpg"
    path.unlink()
    Image.new("I;16", (192, 160)).save(path.with_suffix(".png"))
    with pytest.raises(DatasetError, match=r"SYNTH_0009\.png has mode 'I"):
        load_split(isic2016_split(copy_root, "train"), size=64, progress=False)


def test_generic_layout_with_its_own_mask_pattern(synthetic_root: Path, tmp_path: Path) -> None:
    src_images, src_masks = train_dirs(synthetic_root)
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for path in sorted(src_images.iterdir())[:5]:
        shutil.copy(path, tmp_path / "img" / path.name)
        mask = src_masks / f"{path.stem}_Segmentation.png"
        shutil.copy(mask, tmp_path / "gt" / f"{path.stem}_mask.png")
    layout = SplitLayout(tmp_path / "img", tmp_path / "gt", mask_pattern="{id}_mask.png")
    data = load_split(layout, size=32, progress=False)
    assert data.ids == [p.stem for p in sorted(src_images.iterdir())[:5]]


def test_size_must_be_a_multiple_of_32(synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        load_split(isic2016_split(synthetic_root, "test"), size=100)


def test_seeded_validation_split_is_reproducible_and_disjoint() -> None:
    train, val = train_val_split(100, 0.2, seed=3)
    again = train_val_split(100, 0.2, seed=3)
    other = train_val_split(100, 0.2, seed=4)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, other[1])
    assert len(val) == 20 and set(train).isdisjoint(val) and len(set(train) | set(val)) == 100


def test_validation_practices(synthetic_root: Path) -> None:
    holdout = load_isic2016(synthetic_root, size=32, val_fraction=0.25, seed=1)
    assert len(holdout.train) == 18 and len(holdout.val) == 6 and len(holdout.test) == 8
    assert set(holdout.train.ids).isdisjoint(holdout.val.ids)
    reports = load_isic2016(synthetic_root, size=32, validation="test")
    assert len(reports.train) == 24 and reports.val.ids == reports.test.ids


def test_max_images_keeps_named_ids(synthetic_root: Path) -> None:
    small = load_isic2016(synthetic_root, size=32, validation="test", max_images=2,
                          keep_ids=("SYNTH_0030",))
    assert small.test.ids == ["SYNTH_0025", "SYNTH_0026", "SYNTH_0030"]


def test_real_isic2016_counts_and_ids(real_root: Path) -> None:
    expected = {}
    for split, name in (("train", "train"), ("test", "test")):
        official = (real_root / f"ids_{name}.txt").read_text().split()
        missing = set((real_root / f"missing_{name}.txt").read_text().split())
        expected[split] = sorted(set(official) - missing)
    train = find_pairs(isic2016_split(real_root, "train"))
    test = find_pairs(isic2016_split(real_root, "test"))
    assert len(train) == 806 and len(test) == 339
    assert [p.id for p in train] == expected["train"]
    assert [p.id for p in test] == expected["test"]
