"""The ISIC 2016 Part 1 data set: its folder layout, and the training, validation and test
sets of a run.

:func:`isic2016_split` names the official layout (four folders under one root, images
``<id>.jpg`` and masks ``<id>_Segmentation.png``); :func:`load_isic2016` loads its training
and test splits (:func:`helpers.decode.load_split`) and carves a validation set out of the
training images; :func:`load_splits` does that for a run's settings, generating the SYNTHETIC
demo set first when the run uses it. :func:`describe` names the data honestly in every title.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.config import RunConfig
from helpers.data import SegmentationSet, SplitLayout
from helpers.decode import IN_MEMORY_LIMIT_GB, load_split
from helpers.errors import DatasetError
from helpers.paths import ISIC2016_FOLDERS, ISIC2016_MASK_PATTERN, SYNTHETIC_ROOT
from helpers.synthetic import write_synthetic_isic2016


def isic2016_split(root: str | Path, split: str) -> SplitLayout:
    """The official ISIC 2016 Part 1 layout for ``split`` (``"train"`` or ``"test"``)."""
    if split not in ISIC2016_FOLDERS:
        raise ValueError(f"split must be one of {sorted(ISIC2016_FOLDERS)}, not {split!r}")
    images, masks = ISIC2016_FOLDERS[split]
    return SplitLayout(Path(root) / images, Path(root) / masks, ISIC2016_MASK_PATTERN)


def train_val_split(n: int, val_fraction: float = 0.15, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted (train, validation) index arrays."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ValueError(f"val_fraction {val_fraction} of {n} training image(s) leaves no image "
                         "to train on; lower it, or use more images")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass
class Splits:
    """The sets a run uses: training, validation (for model selection) and test."""

    train: SegmentationSet
    val: SegmentationSet
    test: SegmentationSet
    validation: str  # "holdout" or "test"


def _first(data: SegmentationSet, n: int, keep_ids: tuple[str, ...]) -> SegmentationSet:
    keep = [i for i, sample_id in enumerate(data.ids) if i < n or sample_id in keep_ids]
    return data.subset(keep)


def load_isic2016(root: str | Path, size: int = 128, validation: str = "holdout",
                  val_fraction: float = 0.15, seed: int = 0, max_images: int | None = None,
                  keep_ids: tuple[str, ...] = (), cache_dir: str | Path | None = None,
                  in_memory_gb: float = IN_MEMORY_LIMIT_GB) -> Splits:
    """Training, validation and test sets from an ISIC 2016 Part 1 folder.

    ``validation="holdout"`` (the default) carves a seeded validation set out of the training
    images; the test set is then only used for the final evaluation.
    ``validation="test"`` reproduces the reports' practice: all training images are trained on
    and the test set doubles as the per-epoch validation set (optimistic: it selects the model
    on the very images it is scored on).
    ``max_images`` keeps only the first N images of each split (for smoke runs), plus any
    image named in ``keep_ids``. ``in_memory_gb``: see :func:`load_split`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"Data folder not found: {root}. Put the ISIC 2016 Part 1 data there: the four "
            f"folders {', '.join(f for pair in ISIC2016_FOLDERS.values() for f in pair)} from "
            "https://challenge.isic-archive.com/data/#2016 (unzipped), or run the 'demo' preset.")
    train = load_split(isic2016_split(root, "train"), size, cache_dir, in_memory_gb=in_memory_gb)
    test = load_split(isic2016_split(root, "test"), size, cache_dir, in_memory_gb=in_memory_gb)
    if max_images:
        train, test = _first(train, max_images, keep_ids), _first(test, max_images, keep_ids)
    if validation == "test":
        return Splits(train=train, val=test, test=test, validation=validation)
    if validation != "holdout":
        raise ValueError(f"validation must be 'holdout' or 'test', not {validation!r}")
    train_idx, val_idx = train_val_split(len(train), val_fraction, seed)
    return Splits(train=train.subset(train_idx), val=train.subset(val_idx), test=test,
                  validation=validation)


def load_splits(config: RunConfig, progress: bool = True) -> Splits:
    """The training, validation and test sets of a run (its data folder, size, validation
    practice and ``max_images``); the SYNTHETIC demo set is generated on first use."""
    if config.data_root == SYNTHETIC_ROOT:
        write_synthetic_isic2016(SYNTHETIC_ROOT, n_train=80, n_test=30)
    return load_isic2016(config.data_root, config.image_size, validation=config.validation,
                         val_fraction=config.val_fraction, seed=config.seed,
                         max_images=config.max_images, keep_ids=config.sample_ids,
                         in_memory_gb=config.in_memory_gb)


def describe(splits: Splits, root: str | Path) -> str:
    """One line that names the data honestly; it goes into every title."""
    if splits.train.synthetic:
        return "SYNTHETIC lesions (not dermoscopy)"
    root = Path(root)
    label = "ISIC 2016 Part 1"
    source = root / "SOURCE.txt"
    if source.exists() and "RECONSTRUCTION" in source.read_text()[:300]:
        official = {s: len((root / f"ids_{s}.txt").read_text().split())
                    for s in ("train", "test")}
        held_out = len(splits.val) if splits.validation == "holdout" else 0
        found = {"train": len(splits.train) + held_out, "test": len(splits.test)}
        label += (" (rebuilt from 512x512 centre crops of ISIC 2018; "
                  f"{found['train']}/{official['train']} train, "
                  f"{found['test']}/{official['test']} test)")
    return label
