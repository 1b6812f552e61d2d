"""Finding, checking, decoding and caching image/mask pairs.

Two folder layouts are understood:

* the official ISIC 2016 Part 1 layout (:func:`isic2016_split`): four folders under one root,
  images ``<id>.jpg`` and masks ``<id>_Segmentation.png``;
* a generic one (:class:`SplitLayout`): an images folder and a masks folder per split, with a
  configurable mask file name pattern such as ``"{id}_mask.png"``.

Every JPEG is decoded and resized once. The resized uint8 arrays are cached in one ``.npz`` per
split and size, keyed by the source files' names, sizes and modification times, so later
epochs, notebooks and runs load them in a fraction of a second; a changed source file changes
the key and the cache is rebuilt.

Masks are binarised at > 127 (0/1 label masks are accepted too) and stay binary after resizing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from helpers.atomic import atomic_path
from helpers.paths import SYNTHETIC_ROOT

if TYPE_CHECKING:
    from helpers.config import RunConfig

ISIC2016_FOLDERS = {
    "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Image modes that are converted to RGB; anything else is refused with an error.
CONVERTIBLE_MODES = {"RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "1"}
CACHE_VERSION = 1
SYNTHETIC_MARKER = "SYNTHETIC.txt"


class DatasetError(ValueError):
    """A problem with the input data; the message names the files involved."""


@dataclass(frozen=True)
class SplitLayout:
    """Where one split's images and masks are, and how a mask file is named from an image id."""

    images_dir: Path
    masks_dir: Path
    mask_pattern: str = "{id}_Segmentation.png"


def isic2016_split(root: str | Path, split: str) -> SplitLayout:
    """The official ISIC 2016 Part 1 layout for ``split`` (``"train"`` or ``"test"``)."""
    if split not in ISIC2016_FOLDERS:
        raise ValueError(f"split must be one of {sorted(ISIC2016_FOLDERS)}, not {split!r}")
    images, masks = ISIC2016_FOLDERS[split]
    return SplitLayout(Path(root) / images, Path(root) / masks)


@dataclass(frozen=True)
class Pair:
    """One sample's id and files."""

    id: str
    image_path: Path
    mask_path: Path


def _list_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{what} folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _preview(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def find_pairs(layout: SplitLayout) -> list[Pair]:
    """Pair every image with its mask, sorted by id; raise :class:`DatasetError` on any gap."""
    images = {p.stem: p for p in _list_files(layout.images_dir, "Images")
              if p.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DatasetError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {layout.images_dir}")
    prefix, _, suffix = layout.mask_pattern.partition("{id}")
    mask_name = re.compile(re.escape(prefix) + "(.+)" + re.escape(suffix) + "$")
    masks = {}
    for path in _list_files(layout.masks_dir, "Masks"):
        match = mask_name.match(path.name)
        if match:
            masks[match.group(1)] = path
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    problems = []
    if no_mask:
        problems.append(f"{len(no_mask)} image(s) in {layout.images_dir} have no mask "
                        f"'{layout.mask_pattern}' in {layout.masks_dir}: {_preview(no_mask)}")
    if no_image:
        problems.append(f"{len(no_image)} mask(s) in {layout.masks_dir} have no image in "
                        f"{layout.images_dir}: {_preview(no_image)}")
    if problems:
        raise DatasetError("; ".join(problems))
    return [Pair(i, images[i], masks[i]) for i in sorted(images)]


def read_image(path: Path) -> Image.Image:
    """Open an image fully (so corrupt files fail here) and convert it to RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode not in CONVERTIBLE_MODES:
                raise DatasetError(f"Image {path} has mode {mode!r}, which is not supported; "
                                   f"save it as 8-bit RGB or greyscale")
            if mode in ("P", "PA"):
                image = image.convert("RGBA")
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetError(f"Cannot read image {path}: {error}") from error


def read_mask(path: Path) -> np.ndarray:
    """Read a mask as a 0/255 uint8 array (> 127 is lesion; 0/1 label masks are scaled)."""
    try:
        with Image.open(path) as image:
            image.load()
            grey = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetError(f"Cannot read mask {path}: {error}") from error
    if grey.max() == 1:  # a label mask {0, 1}
        grey = grey * 255
    ambiguous = np.count_nonzero((grey > 63) & (grey < 192)) / grey.size
    if ambiguous > 0.05:
        raise DatasetError(f"Mask {path} is not binary: {ambiguous:.0%} of its pixels are "
                           f"between 64 and 191 (expected 0 and 255)")
    return np.where(grey > 127, 255, 0).astype(np.uint8)


def load_pair(pair: Pair, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode, check and resize one pair: (image HxWx3 uint8, mask HxW {0,1} uint8, (H, W))."""
    image = read_image(pair.image_path)
    mask = read_mask(pair.mask_path)
    if mask.shape != (image.height, image.width):
        raise DatasetError(
            f"Mask {pair.mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{pair.image_path} is {image.width}x{image.height}")
    resized = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    soft_mask = Image.fromarray(mask).resize((size, size), Image.Resampling.BILINEAR)
    binary_mask = (np.asarray(soft_mask) > 127).astype(np.uint8)
    return np.asarray(resized, dtype=np.uint8), binary_mask, (image.height, image.width)


@dataclass
class SegmentationSet:
    """One split, decoded and resized: uint8 images (N,S,S,3) and {0,1} masks (N,S,S)."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    original_sizes: np.ndarray  # (N, 2): height, width of the source files
    image_paths: list[Path] = field(default_factory=list)
    mask_paths: list[Path] = field(default_factory=list)
    synthetic: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def subset(self, indices: np.ndarray | list[int]) -> SegmentationSet:
        """A new set with the samples at ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return SegmentationSet(
            ids=[self.ids[i] for i in idx], images=self.images[idx], masks=self.masks[idx],
            original_sizes=self.original_sizes[idx],
            image_paths=[self.image_paths[i] for i in idx] if self.image_paths else [],
            mask_paths=[self.mask_paths[i] for i in idx] if self.mask_paths else [],
            synthetic=self.synthetic)

    def index_of(self, sample_id: str) -> int:
        return self.ids.index(sample_id)


def _cache_key(pairs: list[Pair], size: int) -> str:
    entries = []
    for pair in pairs:
        for path in (pair.image_path, pair.mask_path):
            stat = path.stat()
            entries.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    text = json.dumps({"version": CACHE_VERSION, "size": size, "files": entries})
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cache_name(layout: SplitLayout) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", layout.images_dir.resolve().as_posix().strip("/"))[-80:]


def default_cache_dir() -> Path:
    """``$LESIONKIT_CACHE``, else ``data/cache`` in the repository."""
    env = os.environ.get("LESIONKIT_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / "cache"


def load_split(layout: SplitLayout, size: int = 128, cache_dir: str | Path | None = None,
               progress: bool = True) -> SegmentationSet:
    """Load one split resized to ``size``×``size``, from the cache when it is still valid."""
    if size % 32:
        raise ValueError(f"image size must be a multiple of 32, not {size}")
    pairs = find_pairs(layout)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = f"{_cache_name(layout)}-{size}"
    cache_file = cache_dir / f"{stem}-{_cache_key(pairs, size)}.npz"
    synthetic = (layout.images_dir.parent / SYNTHETIC_MARKER).exists()
    common = dict(ids=[p.id for p in pairs], image_paths=[p.image_path for p in pairs],
                  mask_paths=[p.mask_path for p in pairs], synthetic=synthetic)
    if cache_file.exists():
        with np.load(cache_file) as stored:
            return SegmentationSet(images=stored["images"], masks=stored["masks"],
                                   original_sizes=stored["original_sizes"], **common)
    images = np.empty((len(pairs), size, size, 3), np.uint8)
    masks = np.empty((len(pairs), size, size), np.uint8)
    sizes = np.empty((len(pairs), 2), np.int64)
    for i, pair in enumerate(tqdm(pairs, desc=f"Decoding {layout.images_dir.name} at {size}px",
                                  disable=not progress)):
        images[i], masks[i], sizes[i] = load_pair(pair, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"{stem}-*.npz"):
        stale.unlink()
    with atomic_path(cache_file) as tmp:
        np.savez(tmp, images=images, masks=masks, original_sizes=sizes)
    return SegmentationSet(images=images, masks=masks, original_sizes=sizes, **common)


def train_val_split(n: int, val_fraction: float = 0.15, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted (train, validation) index arrays."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, not {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
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
                  keep_ids: tuple[str, ...] = (), cache_dir: str | Path | None = None) -> Splits:
    """Training, validation and test sets from an ISIC 2016 Part 1 folder.

    ``validation="holdout"`` (the default) carves a seeded validation set out of the training
    images; the test set is then only used for the final evaluation.
    ``validation="test"`` reproduces the reports' practice: all training images are trained on
    and the test set doubles as the per-epoch validation set (optimistic: it selects the model
    on the very images it is scored on).
    ``max_images`` keeps only the first N images of each split (for smoke runs), plus any
    image named in ``keep_ids``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"Data folder not found: {root}. Put the ISIC 2016 Part 1 data there: the four "
            f"folders {', '.join(f for pair in ISIC2016_FOLDERS.values() for f in pair)} from "
            "https://challenge.isic-archive.com/data/#2016 (unzipped), or run the 'demo' preset.")
    train = load_split(isic2016_split(root, "train"), size, cache_dir)
    test = load_split(isic2016_split(root, "test"), size, cache_dir)
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
    from helpers.synthetic import write_synthetic_isic2016  # here: it imports this module

    if config.data_root == SYNTHETIC_ROOT:
        write_synthetic_isic2016(SYNTHETIC_ROOT, n_train=80, n_test=30)
    return load_isic2016(config.data_root, config.image_size, validation=config.validation,
                         val_fraction=config.val_fraction, seed=config.seed,
                         max_images=config.max_images, keep_ids=config.sample_ids)


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
