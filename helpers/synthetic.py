"""SYNTHETIC lesions: coloured blobs on skin-like texture, with exact masks.

They are not dermoscopy images. They exist so that tests and the quick ``demo`` preset can run
the whole kit on a machine without the ISIC data. A folder written by
:func:`write_synthetic_isic2016` uses the ISIC 2016 folder layout, ids ``SYNTH_0001`` ...,
and holds a ``SYNTHETIC.txt`` marker, so every set loaded from it has ``synthetic=True`` and
the notebooks say "SYNTHETIC" in their titles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from helpers.paths import ISIC2016_FOLDERS, ISIC2016_MASK_PATTERN, SYNTHETIC_MARKER
from helpers.system.atomic import atomic_path, write_text


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, upsampled smoothly."""
    coarse = rng.uniform(0, 255, (max(2, height // scale), max(2, width // scale)))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image, np.float32) / 127.5 - 1


def synthetic_lesion(rng: np.random.Generator, height: int = 160, width: int = 192
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic RGB image (H, W, 3) uint8 and its mask (H, W) with values 0/255."""
    skin = np.array([224, 178, 150], np.float32) + rng.normal(0, 12, 3)
    texture = _smooth_noise(rng, height, width, 12)[..., None] * 14
    image = skin + texture + rng.normal(0, 4, (height, width, 1))

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.12, 0.3) * height, rng.uniform(0.12, 0.3) * width
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.15 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.08 * np.sin(5 * angle)
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / wobble
    mask = radius < 1

    lesion = np.array([120, 75, 50], np.float32) + rng.normal(0, 15, 3)
    inside = np.clip(1.2 - radius, 0, 1)[..., None]  # darker towards the centre
    blotches = _smooth_noise(rng, height, width, 6)[..., None] * 25
    image = np.where(mask[..., None], lesion * (1.1 - 0.3 * inside) + blotches, image)
    image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(1.2))  # soft lesion border
    return np.asarray(image), (mask * 255).astype(np.uint8)


def write_synthetic_isic2016(root: str | Path, n_train: int = 80, n_test: int = 30,
                             seed: int = 0, height: int = 160, width: int = 192) -> Path:
    """Write a SYNTHETIC data set in the ISIC 2016 Part 1 layout; return its root.

    Files that are already there are left alone, so calling it twice is cheap.
    """
    root = Path(root)
    # the marker first, so that a folder left half-written is never taken for real data
    write_text(
        root / SYNTHETIC_MARKER,
        "SYNTHETIC data made by helpers.synthetic (coloured blobs on skin-like texture).\n"
        "Not dermoscopy images; for tests and demos only.\n")
    rng = np.random.default_rng(seed)
    counter = 0
    for split, count in (("train", n_train), ("test", n_test)):
        images_dir, masks_dir = (root / folder for folder in ISIC2016_FOLDERS[split])
        images_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            counter += 1
            sample_id = f"SYNTH_{counter:04d}"
            image, mask = synthetic_lesion(rng, height, width)
            image_path = images_dir / f"{sample_id}.jpg"
            if not image_path.exists():  # the mask first: an image is written last
                mask_path = masks_dir / ISIC2016_MASK_PATTERN.format(id=sample_id)
                with atomic_path(mask_path) as tmp:
                    Image.fromarray(mask).save(tmp)
                with atomic_path(image_path) as tmp:
                    Image.fromarray(image).save(tmp, quality=92)
    return root
