"""The SYNTHETIC set: the ISIC 2016 layout, exact binary masks, marked as not dermoscopy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from helpers.isic2016 import isic2016_split
from helpers.synthetic import synthetic_lesion, write_synthetic_isic2016


def test_a_lesion_has_an_exact_binary_mask() -> None:
    image, mask = synthetic_lesion(np.random.default_rng(0), 64, 80)
    assert image.shape == (64, 80, 3) and mask.shape == (64, 80)
    assert set(np.unique(mask)) == {0, 255} and 0.02 < (mask > 0).mean() < 0.5


def test_written_set_has_the_isic_layout_and_marker(tmp_path: Path) -> None:
    root = write_synthetic_isic2016(tmp_path, n_train=3, n_test=2)
    assert (root / "SYNTHETIC.txt").exists()
    train = isic2016_split(root, "train")
    assert sorted(p.name for p in train.images_dir.iterdir()) == [
        "SYNTH_0001.jpg", "SYNTH_0002.jpg", "SYNTH_0003.jpg"]
    assert Image.open(train.masks_dir / "SYNTH_0001_Segmentation.png").mode == "L"
    before = (train.images_dir / "SYNTH_0001.jpg").stat().st_mtime_ns
    write_synthetic_isic2016(tmp_path, n_train=3, n_test=2)  # twice: files are left alone
    assert (train.images_dir / "SYNTH_0001.jpg").stat().st_mtime_ns == before
    assert not list(tmp_path.rglob("*.tmp*"))
