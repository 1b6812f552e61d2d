"""Zoomed-out copies: same size, the lesion shrunk by the factor, the ring dark, masks binary;
the ablation's rows add one ingredient at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.commands.ablation import BASELINE, ablation_rows
from helpers.commands.zoomout import main
from helpers.config import load_config
from helpers.data import read_mask
from helpers.isic2016 import isic2016_split
from helpers.zoomout import write_zoomed_folder, zoom_out


def test_zoom_out_shrinks_the_lesion_and_keeps_size_and_mask_values() -> None:
    images = np.full((1, 100, 100, 3), 200, np.uint8)
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[:, 20:80, 20:80] = 255
    out, out_masks = zoom_out(images, masks, 0.5)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert set(np.unique(out_masks)) == {0, 255}
    assert (out_masks > 0).sum() == pytest.approx((masks > 0).sum() / 4, rel=0.1)
    assert out[0, 0, 0].max() < 30  # a corner is the dermatoscope's dark ring
    assert (out[0, 50, 2] == 200).all()  # inside the ring, beside the image: its skin colour


def test_zoomout_command_writes_every_pair_at_original_size(synthetic_root: Path,
                                                            tmp_path: Path) -> None:
    layout = isic2016_split(synthetic_root, "test")
    count = write_zoomed_folder(layout.images_dir, layout.masks_dir, tmp_path, 0.6,
                                progress=False)
    assert count == len(list(layout.images_dir.iterdir()))
    for image_path in sorted(layout.images_dir.iterdir())[:3]:
        zoomed = Image.open(tmp_path / "images" / f"{image_path.stem}.png")
        assert zoomed.size == Image.open(image_path).size
        truth = read_mask(layout.masks_dir / f"{image_path.stem}_Segmentation.png")
        mask = read_mask(tmp_path / "masks" / f"{image_path.stem}_Segmentation.png")
        assert (mask > 0).sum() == pytest.approx(0.36 * (truth > 0).sum(), rel=0.15)


def test_zoomout_command_names_an_image_without_mask(synthetic_root: Path, tmp_path: Path,
                                                     capsys) -> None:
    layout = isic2016_split(synthetic_root, "test")
    assert main(["--images", str(layout.images_dir), "--masks", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--factor", "0.6"]) == 1
    assert "No mask for" in capsys.readouterr().err


def test_ablation_adds_one_ingredient_per_row_from_report_a() -> None:
    target = load_config("best").fine_tuned
    rows = ablation_rows(target)
    assert rows[0][2] == dataclasses.replace(target, **BASELINE)
    assert rows[-1][2] == target
    for (_, _, before), (name, _, after) in zip(rows, rows[1:], strict=False):
        changed = [k for k in BASELINE if getattr(before, k) != getattr(after, k)]
        assert changed == [name]
