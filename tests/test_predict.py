"""Masks for your own images: original size, overlays, the loader's bad-input rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from helpers import predict
from helpers.commands import predict as predict_command
from helpers.config import TrainConfig
from helpers.decode import load_split
from helpers.errors import DatasetError
from helpers.evaluate import predict as predict_probs
from helpers.evaluate import upsample
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.model import build_model
from helpers.runs import load_run
from helpers.train import fit


@pytest.fixture(scope="module")
def run_dir(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
    out = tmp_path_factory.mktemp("run")
    fit(build_model(config), splits.train, splits.val, config, out, progress=False)
    return out


@pytest.fixture
def images(synthetic_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    for path in sorted(isic2016_split(synthetic_root, "test").images_dir.iterdir())[:3]:
        shutil.copy(path, folder / path.name)
    Image.new("RGB", (250, 90), (200, 150, 120)).save(folder / "wide.png")  # another size
    return folder


def test_masks_at_original_size_and_overlays_are_written(run_dir, images, tmp_path) -> None:
    written = predict.predict_folder(run_dir, images, tmp_path / "out", batch_size=2,
                                     progress=False)
    assert [p.name for p in written] == ["SYNTH_0025_mask.png", "SYNTH_0026_mask.png",
                                         "SYNTH_0027_mask.png", "wide_mask.png"]
    for mask_path in written:
        sample_id = mask_path.name.removesuffix("_mask.png")
        source = next(images.glob(f"{sample_id}.*"))
        mask = Image.open(mask_path)
        assert mask.size == Image.open(source).size and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        overlay = Image.open(tmp_path / "out" / f"{sample_id}_overlay.png")
        assert overlay.size == mask.size and overlay.mode == "RGB"


def test_masks_agree_with_the_test_set_evaluation(run_dir, synthetic_root, tmp_path) -> None:
    model, config, size = load_run(run_dir)
    data = load_split(isic2016_split(synthetic_root, "test"), size, progress=False)
    probs = predict_probs(model, data, config)
    written = predict.predict_folder(run_dir, data.image_paths[0].parent, tmp_path,
                                     progress=False)
    for prob, (height, width), path in zip(probs, data.original_sizes, written, strict=True):
        expected = (upsample(prob, int(height), int(width)) > 0.5) * 255
        assert np.array_equal(np.asarray(Image.open(path)), expected)


def test_flipped_masks_agree_with_the_flipped_test_set_evaluation(run_dir, synthetic_root,
                                                                  tmp_path) -> None:
    model, config, size = load_run(run_dir)
    data = load_split(isic2016_split(synthetic_root, "test"), size, progress=False)
    probs = predict_probs(model, data, config, flips=True)
    assert not np.array_equal(probs, predict_probs(model, data, config))
    assert predict_command.main(["--run", str(run_dir), "--images", str(data.image_paths[0].parent),
                         "--out", str(tmp_path), "--flips", "--threshold", "0.45"]) == 0
    for prob, (height, width), sample_id in zip(probs, data.original_sizes, data.ids,
                                                strict=True):
        expected = (upsample(prob, int(height), int(width)) > 0.45) * 255
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{sample_id}_mask.png")),
                              expected)


def test_an_unreadable_image_is_named_and_no_half_file_is_left(run_dir, images,
                                                               tmp_path) -> None:
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"Cannot read image .*broken\.jpg"):
        predict.predict_folder(run_dir, images, tmp_path / "out", batch_size=1, progress=False)
    for path in (tmp_path / "out").iterdir():  # the masks before it, each complete
        assert Image.open(path).size == Image.open(images / "SYNTH_0025.jpg").size
        assert ".tmp" not in path.name


def test_two_files_for_one_id_are_refused(run_dir, images, tmp_path) -> None:
    shutil.copy(images / "SYNTH_0025.jpg", images / "SYNTH_0025.png")
    assert predict_command.main(["--run", str(run_dir), "--images", str(images),
                         "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_writing_into_the_images_folder_is_refused(run_dir, images, capsys) -> None:
    assert predict_command.main(["--run", str(run_dir), "--images", str(images),
                         "--out", str(images)]) == 1
    assert "is the input folder" in capsys.readouterr().err
    assert not list(images.glob("*_mask.png"))


@pytest.mark.parametrize("threshold", ["0", "1.5"])
def test_a_threshold_outside_0_and_1_is_refused(run_dir, images, tmp_path, capsys,
                                                threshold: str) -> None:
    assert predict_command.main(["--run", str(run_dir), "--images", str(images), "--out",
                         str(tmp_path / "out"), "--threshold", threshold]) == 1
    assert "threshold must be between 0 and 1" in capsys.readouterr().err


def test_the_outline_is_the_masks_border() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 255
    border = predict.outline(mask, width=1)
    assert border[5, 5] and border[5, 10] and not border[10, 10] and not border[0, 0]


@pytest.mark.parametrize("width", [1, 2, 5])
def test_the_outline_is_the_mask_less_its_erosion_by_a_square(width: int) -> None:
    # the reference: a (2 width + 1)-pixel minimum filter, edges repeated, computed directly
    rng = np.random.default_rng(width)
    for _ in range(20):
        height, breadth = rng.integers(1, 30, size=2)
        mask = (rng.random((height, breadth)) < rng.random()).astype(np.uint8) * 255
        padded = np.pad(mask > 0, width, mode="edge")
        k = 2 * width + 1
        eroded = np.array([[padded[y:y + k, x:x + k].all() for x in range(breadth)]
                           for y in range(height)]).reshape(mask.shape)
        np.testing.assert_array_equal(predict.outline(mask, width), (mask > 0) & ~eroded)
        # the same pixels as PIL's minimum filter, which it replaces
        pil = np.asarray(Image.fromarray(mask).filter(ImageFilter.MinFilter(k))) == 0
        np.testing.assert_array_equal(predict.outline(mask, width), (mask > 0) & pil)
