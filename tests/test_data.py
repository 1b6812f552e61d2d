"""Pairing, decoding, caching and the clear errors for bad input."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import helpers.data as dataset
from helpers.data import SplitLayout, find_pairs, load_pair, read_image, read_mask
from helpers.decode import load_split
from helpers.errors import DatasetError
from helpers.isic2016 import isic2016_split, load_isic2016, train_val_split


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


def test_truncated_mask_is_refused_also_after_the_report_printer_is_loaded(
        copy_root: Path) -> None:
    # importing WeasyPrint (helpers.report.pdf does) sets PIL's process-wide flag that
    # accepts truncated images
    importlib.import_module("helpers.report.pdf")
    path = train_mask(copy_root, "SYNTH_0004")
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"Cannot read mask .*SYNTH_0004_Segmentation\.png"):
        read_mask(path)


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


# --- Bad input: never a silently wrong result ---------------------------------------------


def train_mask(root: Path, sample_id: str) -> Path:
    return train_dirs(root)[1] / f"{sample_id}_Segmentation.png"


def upright_mask(root: Path, sample_id: str) -> np.ndarray:
    """The synthetic 0/255 mask of ``sample_id`` as written."""
    return np.asarray(Image.open(train_mask(root, sample_id)))


def load_train(root: Path, size: int = 64) -> dataset.SegmentationSet:
    return load_split(isic2016_split(root, "train"), size=size, progress=False)


def test_palette_mask_with_one_colour_lesion_is_read_as_lesion(copy_root: Path) -> None:
    truth = upright_mask(copy_root, "SYNTH_0001")
    palette = Image.fromarray((truth > 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 128, 0, 0])  # Pascal-VOC background and dark red
    palette.save(train_mask(copy_root, "SYNTH_0001"))
    assert np.array_equal(read_mask(train_mask(copy_root, "SYNTH_0001")), truth)


def test_rgb_mask_with_a_large_red_lesion_is_read_as_lesion(copy_root: Path) -> None:
    truth = np.zeros((160, 192), np.uint8)
    truth[20:140, 30:170] = 255  # 55% of the image: grey 76 would be "not binary"
    rgb = np.zeros((160, 192, 3), np.uint8)
    rgb[truth > 0] = (255, 0, 0)
    Image.fromarray(rgb).save(train_mask(copy_root, "SYNTH_0002"))
    assert np.array_equal(read_mask(train_mask(copy_root, "SYNTH_0002")), truth)


def test_colour_mask_with_three_colours_is_refused_naming_them(copy_root: Path) -> None:
    rgb = np.zeros((160, 192, 3), np.uint8)
    rgb[10:50, 10:50] = (255, 0, 0)
    rgb[80:120, 80:120] = (0, 255, 0)
    Image.fromarray(rgb).save(train_mask(copy_root, "SYNTH_0003"))
    with pytest.raises(DatasetError, match=r"SYNTH_0003_Segmentation\.png is a colour mask with "
                                           r"3 colour\(s\): \(0, 0, 0\), \(0, 255, 0\), "
                                           r"\(255, 0, 0\)"):
        load_train(copy_root)


def test_palette_mask_with_a_void_border_is_refused_naming_indices(copy_root: Path) -> None:
    labels = np.zeros((160, 192), np.uint8)
    labels[40:120, 40:150] = 255  # VOC "void" border around
    labels[44:116, 44:146] = 1  # class 1
    palette = Image.fromarray(labels, "P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 253 + [224, 224, 192])
    palette.save(train_mask(copy_root, "SYNTH_0004"))
    with pytest.raises(DatasetError, match=r"SYNTH_0004_Segmentation\.png is a colour mask with "
                                           r"3 colour.*palette indices 0, 1, 255"):
        load_train(copy_root)


@pytest.mark.parametrize("edit", ["blur", "jpeg"])
def test_antialiased_grey_mask_still_loads_thresholded_at_127(copy_root: Path, tmp_path: Path,
                                                             edit: str) -> None:
    truth = Image.fromarray(upright_mask(copy_root, "SYNTH_0005"))
    if edit == "blur":
        soft = truth.filter(ImageFilter.GaussianBlur(0.8))
        path = tmp_path / "soft.png"
        soft.save(path)
    else:
        path = tmp_path / "soft.jpg"
        truth.convert("RGB").save(path, quality=75)
        soft = Image.open(path).convert("L")
    assert 2 < len(np.unique(np.asarray(soft)))  # really anti-aliased
    expected = np.where(np.asarray(soft) > 127, 255, 0)
    assert np.array_equal(read_mask(path), expected)


def test_label_mask_with_three_classes_is_refused_naming_values(copy_root: Path) -> None:
    labels = np.zeros((160, 192), np.uint8)
    labels[20:80, 20:80] = 1
    labels[90:140, 90:160] = 2
    Image.fromarray(labels).save(train_mask(copy_root, "SYNTH_0006"))
    with pytest.raises(DatasetError, match=r"SYNTH_0006_Segmentation\.png has no value above 127 "
                                           r"\(values found: 0, 1, 2\)"):
        load_train(copy_root)


def test_label_mask_mixing_label_values_with_255_is_refused(copy_root: Path) -> None:
    labels = np.zeros((160, 192), np.uint8)
    labels[30:130, 30:160] = 255
    labels[35:125, 35:155] = 1  # the lesion as label 1 inside a 255 "void" border
    Image.fromarray(labels).save(train_mask(copy_root, "SYNTH_0007"))
    with pytest.raises(DatasetError, match=r"SYNTH_0007_Segmentation\.png mixes label value\(s\) "
                                           r"1 .*values found: 0, 1, 255"):
        load_train(copy_root)


@pytest.mark.parametrize("top", [1, 255, 65535])
def test_16_bit_binary_masks_load_as_binary(copy_root: Path, top: int) -> None:
    truth = upright_mask(copy_root, "SYNTH_0008")
    values = np.where(truth > 0, top, 0).astype(np.uint16)
    Image.fromarray(values).save(train_mask(copy_root, "SYNTH_0008"))
    assert Image.open(train_mask(copy_root, "SYNTH_0008")).mode.startswith("I")
    assert np.array_equal(read_mask(train_mask(copy_root, "SYNTH_0008")), truth)
    data = load_train(copy_root)
    assert data.masks[data.index_of("SYNTH_0008")].sum() > 0


def test_16_bit_label_mask_with_three_classes_is_refused(copy_root: Path) -> None:
    labels = np.zeros((160, 192), np.uint16)
    labels[20:80, 20:80] = 1
    labels[90:140, 90:160] = 2
    Image.fromarray(labels).save(train_mask(copy_root, "SYNTH_0008"))
    with pytest.raises(DatasetError, match=r"SYNTH_0008_Segmentation\.png \(I;16\) has no value "
                                           r"above 127 \(values found: 0, 1, 2\)"):
        load_train(copy_root)


def test_dim_grey_lesion_is_refused_not_read_as_empty(copy_root: Path) -> None:
    grey = np.zeros((160, 192), np.uint8)
    grey[60:80, 60:90] = 100  # 2% of the pixels: under the "not binary" limit, all <= 127
    Image.fromarray(grey).save(train_mask(copy_root, "SYNTH_0009"))
    with pytest.raises(DatasetError, match=r"SYNTH_0009_Segmentation\.png has no value above 127 "
                                           r"\(values found: 0, 100\)"):
        load_train(copy_root)


def test_lesion_drawn_only_in_the_alpha_channel_is_refused(copy_root: Path) -> None:
    truth = upright_mask(copy_root, "SYNTH_0010")
    rgba = np.zeros((160, 192, 4), np.uint8)
    rgba[..., 3] = truth  # black everywhere, the lesion opaque, the background transparent
    Image.fromarray(rgba).save(train_mask(copy_root, "SYNTH_0010"))
    with pytest.raises(DatasetError, match=r"SYNTH_0010_Segmentation\.png has transparency that "
                                           r"disagrees with its colours"):
        load_train(copy_root)


def test_white_lesion_on_transparent_black_is_read_as_lesion(copy_root: Path) -> None:
    truth = upright_mask(copy_root, "SYNTH_0010")
    rgba = np.zeros((160, 192, 4), np.uint8)
    rgba[truth > 0] = (255, 255, 255, 255)
    Image.fromarray(rgba).save(train_mask(copy_root, "SYNTH_0010"))
    assert np.array_equal(read_mask(train_mask(copy_root, "SYNTH_0010")), truth)


def test_all_zero_mask_is_accepted_as_empty(copy_root: Path) -> None:
    Image.new("L", (192, 160)).save(train_mask(copy_root, "SYNTH_0011"))
    data = load_train(copy_root)
    assert data.masks[data.index_of("SYNTH_0011")].sum() == 0


def test_tiny_lesion_may_vanish_when_resized_with_a_warning(copy_root: Path) -> None:
    dot = np.zeros((160, 192), np.uint8)
    dot[80:83, 90:93] = 255  # 9 pixels: a third of one pixel at 32x32
    Image.fromarray(dot).save(train_mask(copy_root, "SYNTH_0012"))
    pair = next(p for p in find_pairs(isic2016_split(copy_root, "train")) if p.id == "SYNTH_0012")
    with pytest.warns(UserWarning, match=r"SYNTH_0012_Segmentation\.png has a lesion of 9 "
                                         r"pixels that vanishes when resized to 32x32"):
        _, mask, _ = load_pair(pair, 32)
    assert mask.sum() == 0


def test_thin_outline_that_vanishes_when_resized_is_refused(copy_root: Path) -> None:
    outline = np.zeros((160, 192), np.uint8)
    outline[30:130, 40:150] = 255
    outline[31:129, 41:149] = 0  # a one-pixel outline, not a filled lesion
    Image.fromarray(outline).save(train_mask(copy_root, "SYNTH_0012"))
    with pytest.raises(DatasetError, match=r"SYNTH_0012_Segmentation\.png has a lesion of 416 "
                                           r"pixels that vanishes .*not tiny"):
        load_train(copy_root, size=32)


def test_jpeg_with_exif_orientation_is_read_upright(copy_root: Path) -> None:
    images, _ = train_dirs(copy_root)
    path = images / "SYNTH_0013.jpg"
    upright = Image.open(path).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone stores it: 160x192
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(path, exif=exif, quality=95)
    assert Image.open(path).size == (160, 192)
    image = read_image(path)
    assert image.size == (192, 160)
    difference = np.abs(np.asarray(image, np.int16) - np.asarray(upright, np.int16))
    assert difference.mean() < 3  # the same picture, not a rotated one
    data = load_train(copy_root)
    assert tuple(data.original_sizes[data.index_of("SYNTH_0013")]) == (160, 192)


def test_image_with_two_files_for_one_id_is_refused_naming_both(copy_root: Path) -> None:
    images, _ = train_dirs(copy_root)
    Image.open(images / "SYNTH_0014.jpg").save(images / "SYNTH_0014.png")
    with pytest.raises(DatasetError, match=r"several images for id 'SYNTH_0014': "
                                           r".*SYNTH_0014\.jpg, .*SYNTH_0014\.png"):
        load_train(copy_root)


def test_two_mask_files_for_one_id_are_refused_naming_both(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    shutil.copy(masks / "SYNTH_0015_Segmentation.png", masks / "SYNTH_0015_segmentation.PNG")
    with pytest.raises(DatasetError, match=r"several masks for id 'SYNTH_0015': "
                                           r".*SYNTH_0015_Segmentation\.png, "
                                           r".*SYNTH_0015_segmentation\.PNG"):
        load_train(copy_root)


@pytest.mark.parametrize("limit", [10_000, 20_000])  # PIL's error (> 2x limit), its warning
def test_oversized_image_is_refused_with_its_pixel_count(copy_root: Path, monkeypatch,
                                                         limit: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DatasetError, match=r"Image .*SYNTH_0001\.jpg has 30720 pixels, more than "
                                           r"the limit of \d+ pixels"):
        load_train(copy_root)


def test_pils_own_warning_does_not_come_before_the_kits_error(tmp_path: Path) -> None:
    # in a process of its own: pytest sets warning filters of its own for every test
    Image.new("RGB", (200, 150)).save(tmp_path / "big.png")
    code = ("from PIL import Image; from helpers.data import read_image\n"
            "from helpers.errors import DatasetError\n"
            "Image.MAX_IMAGE_PIXELS = 20_000\n"
            f"try: read_image(__import__('pathlib').Path({str(tmp_path / 'big.png')!r}))\n"
            "except DatasetError as error: print(error)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert "has 30000 pixels, more than the limit of 20000 pixels" in done.stdout
    assert "DecompressionBombWarning" not in done.stderr


def test_oversized_images_are_refused_also_when_decoded_on_several_threads(
        tmp_path: Path, monkeypatch) -> None:
    # warning filters are shared by all threads: a guard built on them let some images through
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400_000)
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    pairs = []
    for number in range(8):  # 480,000 pixels each
        path = tmp_path / f"BIG_{number}.jpg"
        Image.fromarray(noise).save(path, quality=95)
        pairs.append(dataset.Pair(f"BIG_{number}", path, tmp_path / "unused.png"))

    def outcome(pair) -> str:
        try:
            load_pair(pair, 64)
        except DatasetError as error:
            return str(error)
        return f"{pair.image_path} was accepted"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(outcome, pairs * 24))
    assert all("480000 pixels, more than the limit of 400000" in o for o in outcomes), \
        [o for o in outcomes if "accepted" in o][:3]


def test_a_file_pil_cannot_decompress_is_named(copy_root: Path) -> None:
    path = train_mask(copy_root, "SYNTH_0008")
    mask = Image.open(path)
    mask.save(path, icc_profile=bytes(2_000_000))  # larger than PIL allows a PNG chunk to be
    with pytest.raises(DatasetError, match=r"Cannot read mask .*SYNTH_0008_Segmentation\.png: "
                                           r"ValueError"):
        load_train(copy_root)


def test_broken_links_in_a_split_are_named(copy_root: Path) -> None:
    images, _ = train_dirs(copy_root)
    (images / "SYNTH_9999.jpg").symlink_to(images / "moved_away.jpg")
    with pytest.raises(DatasetError, match=r"1 link\(s\) to files that do not exist: "
                                           r"SYNTH_9999\.jpg"):
        load_train(copy_root)


def test_16_bit_mask_mixing_small_labels_with_65535_is_refused(copy_root: Path) -> None:
    # scaled to 8 bits, label 1 would silently become background
    values = np.zeros((160, 192), np.uint16)
    values[20:80, 20:80] = 1
    values[90:140, 90:160] = 65535
    Image.fromarray(values).save(train_mask(copy_root, "SYNTH_0008"))
    with pytest.raises(DatasetError, match=r"SYNTH_0008_Segmentation\.png \(I;16\) mixes label "
                                           r"value\(s\) 1 .*up to 65535"):
        load_train(copy_root)


def test_a_mask_replaced_with_its_old_size_and_time_is_decoded_again(copy_root: Path,
                                                                     tmp_path: Path) -> None:
    # as `cp -p` or `rsync -a` would leave it: other content, same size, same mtime
    path = train_mask(copy_root, "SYNTH_0008")
    Image.open(path).save(path, compress_level=0)
    before = path.stat()
    layout = isic2016_split(copy_root, "train")
    first = load_split(layout, size=64, cache_dir=tmp_path, progress=False)
    assert first.masks[first.index_of("SYNTH_0008")].sum() > 0
    Image.fromarray(np.zeros_like(np.asarray(Image.open(path)))).save(path, compress_level=0)
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = load_split(layout, size=64, cache_dir=tmp_path, progress=False)
    assert again.masks[again.index_of("SYNTH_0008")].sum() == 0


def test_mask_names_in_other_case_and_unicode_form_are_accepted(copy_root: Path) -> None:
    images, masks = train_dirs(copy_root)
    (masks / "SYNTH_0016_Segmentation.png").rename(masks / "SYNTH_0016_segmentation.PNG")
    nfc = unicodedata.normalize("NFC", "café_0017")
    nfd = unicodedata.normalize("NFD", "café_0017")
    assert nfc != nfd
    (images / "SYNTH_0017.jpg").rename(images / f"{nfc}.jpg")
    (masks / "SYNTH_0017_Segmentation.png").rename(masks / f"{nfd}_Segmentation.png")
    data = load_train(copy_root)
    assert "SYNTH_0016" in data.ids and nfc in data.ids and len(data) == 24


def test_image_without_mask_lists_the_near_misses(copy_root: Path) -> None:
    _, masks = train_dirs(copy_root)
    (masks / "SYNTH_0018_Segmentation.png").rename(masks / "SYNTH_0018_mask.png")
    (masks / "SYNTH_0019_Segmentation.png").rename(masks / "SYNTH_0019_Segmentation.bmp")
    with pytest.raises(DatasetError) as error:
        load_train(copy_root)
    message = str(error.value)
    assert "2 image(s)" in message and "almost match" in message
    assert "SYNTH_0018_mask.png" in message and "SYNTH_0019_Segmentation.bmp" in message


def test_images_and_masks_in_one_folder_are_told_apart(synthetic_root: Path,
                                                       tmp_path: Path) -> None:
    src_images, src_masks = train_dirs(synthetic_root)
    both = tmp_path / "both"
    both.mkdir()
    for path in sorted(src_images.iterdir())[:5]:
        shutil.copy(path, both / path.name)
        shutil.copy(src_masks / f"{path.stem}_Segmentation.png", both)
    data = load_split(SplitLayout(both, both), size=32, progress=False)
    assert data.ids == [p.stem for p in sorted(src_images.iterdir())[:5]]


def test_mask_files_among_the_images_are_refused(copy_root: Path) -> None:
    images, masks = train_dirs(copy_root)
    shutil.copy(masks / "SYNTH_0020_Segmentation.png", images)
    with pytest.raises(DatasetError, match=r"1 file\(s\) in the images folder .* are named like "
                                           r"masks .*SYNTH_0020_Segmentation\.png"):
        load_train(copy_root)


@pytest.mark.parametrize(("n", "fraction"), [(1, 0.5), (4, 0.9), (10, 0.99)])
def test_a_validation_fraction_that_leaves_no_training_image_is_refused(n: int,
                                                                       fraction: float) -> None:
    with pytest.raises(ValueError, match=f"val_fraction {fraction} of {n} training image"):
        train_val_split(n, fraction)
