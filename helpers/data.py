"""Finding, checking, decoding and caching image/mask pairs.

Two folder layouts are understood:

* the official ISIC 2016 Part 1 layout (:func:`isic2016_split`): four folders under one root,
  images ``<id>.jpg`` and masks ``<id>_Segmentation.png``;
* a generic one (:class:`SplitLayout`): an images folder and a masks folder per split, with a
  configurable mask file name pattern such as ``"{id}_mask.png"``.

Every JPEG is decoded and resized once (by a thread per core, for 64 images or more) into
the cache of :mod:`helpers.cache`, keyed by each source file's name, size and modification
time: a changed or added file is decoded again, alone. Later epochs, notebooks and runs load
a split in a fraction of a second. A split larger than ``in_memory_gb`` (a setting) stays on
disk and is read batch by batch.

Bad input never gives a silently wrong result: it is converted when its meaning is clear and
refused with a :class:`DatasetError` naming the file and the problem otherwise.

* Names. The literal part of the mask pattern is matched ignoring case (``_segmentation.PNG``
  is a mask for ``_Segmentation.png``) and names are compared in Unicode NFC, so NFC and NFD
  spellings of one name are the same id; the id itself must match exactly. Two files for one
  id (``x.jpg`` and ``x.png``, or two masks) are refused. When an image has no mask, files in
  the masks folder that almost match are listed. Images and masks may share one folder (files
  named like a mask are then not taken for images); mask-named files in a separate images
  folder are refused.
* Images are turned upright by their EXIF orientation (as viewers do) before anything else;
  so are masks. An image over PIL's pixel limit (``PIL.Image.MAX_IMAGE_PIXELS``, a guard
  against decompression bombs) is refused with its pixel count.
* Greyscale masks (8-bit, or 16-bit scaled to 8 bits) are binarised at > 127, exactly as
  always; 0/1 label masks are scaled to 0/255; a mask with more than 5% of its pixels between
  64 and 191 is refused as not binary. A mask whose non-zero values are all below 128 (a
  label mask such as {0, 1, 2}) or that mixes a label value covering at least 1% of it with
  values above 127 (such as {0, 1, 255}) is refused, naming the values.
* Colour masks (RGB, or a palette whose used colours are not grey) are read by colour: exactly
  two colours, one of them black, mean lesion = the other colour (a Pascal-VOC dark red
  palette index, a red RGB lesion); any other set of colours is refused, naming them. RGB
  masks whose pixels are all grey (within a channel spread of 32) are greyscale masks.
* Transparency is ignored unless it varies and disagrees with the colours, which is refused.
* A mask file with non-zero pixels never loads as empty. After resizing to the training size a
  lesion may vanish only when it is tiny (under four training pixels' worth of source pixels),
  with a warning; a larger lesion that vanishes (a thin outline) is refused.
* Every cached row is checked against the CRC-32 written with it: a row changed on disk is
  never used, and its images are decoded again (:mod:`helpers.cache`).
* An unreadable cache file is a cache miss (with a warning) and its images are decoded again;
  an unwritable cache folder gives a warning and the split is used without a cache. Removing
  unused cache files never touches another process's temporary file.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import struct
import unicodedata
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from helpers.cache import (
    DamagedCache,
    DiskArray,
    Found,
    SplitCache,
    row_blocks,
    rows_per_shard,
    source_key,
)
from helpers.paths import SYNTHETIC_ROOT

if TYPE_CHECKING:
    from helpers.config import RunConfig

# An image over PIL's pixel limit is refused below, naming the file (_open_upright), so PIL's
# own warning about it, printed just before, adds nothing. Set once here: a filter changed
# while the decoding threads run would be changed for all of them.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ISIC2016_FOLDERS = {
    "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Image modes that are converted to RGB; anything else is refused with an error.
CONVERTIBLE_MODES = {"RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "1"}
#: Largest channel spread (max - min of R, G, B) of a pixel that still counts as grey.
GREY_TOLERANCE = 32
#: A label value (1..63) covering at least this fraction of a mask that also has values above
#: 127 makes it a mixed label mask, which is refused.
LABEL_FRACTION = 0.01
#: A lesion smaller than this many training-size pixels may vanish when resized (with a warning).
TINY_LESION_PIXELS = 4
#: Splits whose arrays take at most this many GiB are held in RAM (the presets' ``in_memory_gb``).
IN_MEMORY_LIMIT_GB = 4.0
#: Fewer images than this are decoded by one thread (not worth the others' bookkeeping).
PARALLEL_MIN_IMAGES = 64
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
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    broken = sorted(p.name for p in entries if p.is_symlink() and not p.exists())
    if broken:
        raise DatasetError(f"{what} folder {folder} has {len(broken)} link(s) to files that do "
                           f"not exist: {_preview(broken)}")
    return sorted(p for p in entries if p.is_file())


def _preview(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _mask_name_regex(pattern: str) -> re.Pattern[str]:
    """The mask file names of ``pattern``: its literal parts in any case, the id exactly."""
    prefix, _, suffix = _nfc(pattern).partition("{id}")
    return re.compile(f"(?i:{re.escape(prefix)})(.+)(?i:{re.escape(suffix)})")


def _duplicates(files: dict[str, list[Path]], what: str) -> list[str]:
    return [f"{what} {sample_id!r}: {', '.join(str(p) for p in paths)}"
            for sample_id, paths in sorted(files.items()) if len(paths) > 1]


def find_images(folder: Path) -> dict[str, Path]:
    """The images in ``folder`` by id (file name without suffix), sorted; two files for one id
    (``x.jpg`` and ``x.png``) or no image at all raise :class:`DatasetError`."""
    images: dict[str, list[Path]] = {}
    for path in _list_files(Path(folder), "Images"):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.setdefault(_nfc(path.stem), []).append(path)
    duplicates = _duplicates(images, "several images for id")
    if duplicates:
        raise DatasetError("; ".join(duplicates))
    if not images:
        raise DatasetError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return {sample_id: images[sample_id][0] for sample_id in sorted(images)}


def resize_image(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image resized to ``size`` x ``size`` as the network sees it (H, W, 3) uint8."""
    resized = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(resized, dtype=np.uint8)


def find_pairs(layout: SplitLayout) -> list[Pair]:
    """Pair every image with its mask, sorted by id; raise :class:`DatasetError` on any gap,
    duplicate id, or mask file among the images."""
    mask_name = _mask_name_regex(layout.mask_pattern)
    image_files = [p for p in _list_files(layout.images_dir, "Images")
                   if p.suffix.lower() in IMAGE_SUFFIXES]
    stems = {_nfc(p.stem) for p in image_files}
    named_like_masks = []
    for path in image_files:
        match = mask_name.fullmatch(_nfc(path.name))
        if match and _nfc(match.group(1)) != _nfc(path.stem):
            named_like_masks.append((path, _nfc(match.group(1))))
    if layout.images_dir.resolve() == layout.masks_dir.resolve():  # one folder for both
        image_files = [p for p in image_files if p not in {m for m, _ in named_like_masks}]
    else:
        misplaced = [str(path) for path, sample_id in named_like_masks if sample_id in stems]
        if misplaced:
            raise DatasetError(
                f"{len(misplaced)} file(s) in the images folder {layout.images_dir} are named "
                f"like masks ('{layout.mask_pattern}') of images there; move them to the masks "
                f"folder {layout.masks_dir}: {_preview(misplaced)}")
    if not image_files:
        raise DatasetError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {layout.images_dir}")
    images: dict[str, list[Path]] = {}
    for path in image_files:
        images.setdefault(_nfc(path.stem), []).append(path)
    masks: dict[str, list[Path]] = {}
    unmatched = []
    for path in _list_files(layout.masks_dir, "Masks"):
        match = mask_name.fullmatch(_nfc(path.name))
        if match:
            masks.setdefault(_nfc(match.group(1)), []).append(path)
        elif path not in image_files:
            unmatched.append(path)
    duplicates = _duplicates(images, "several images for id") + _duplicates(
        masks, "several masks for id")
    if duplicates:
        raise DatasetError("; ".join(duplicates))
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    problems = []
    if no_mask:
        problem = (f"{len(no_mask)} image(s) in {layout.images_dir} have no mask "
                   f"'{layout.mask_pattern}' in {layout.masks_dir}: {_preview(no_mask)}")
        candidates = unmatched + [masks[i][0] for i in no_image]
        wanted = [i.casefold() for i in no_mask]
        near = [p.name for p in candidates
                if any(i in _nfc(p.name).casefold() for i in wanted)]
        if near:
            problem += (f" (files there that almost match: {_preview(near)}; rename them or "
                        "set the mask pattern)")
        elif unmatched:
            problem += (f" (other files there: {_preview([p.name for p in unmatched], 5)})")
        problems.append(problem)
    if no_image:
        problems.append(f"{len(no_image)} mask(s) in {layout.masks_dir} have no image in "
                        f"{layout.images_dir}: {_preview(no_image)}")
    if problems:
        raise DatasetError("; ".join(problems))
    return [Pair(i, images[i][0], masks[i][0]) for i in sorted(images)]


def _too_large(path: Path, what: str, pixels: int | None, limit: int | None) -> str:
    return (f"{what.capitalize()} {path} has {pixels or 'too many'} pixels, more than the "
            f"limit of {limit} pixels (PIL.Image.MAX_IMAGE_PIXELS guards against decompression "
            "bombs; raise it only for files you trust)")


def _open_upright(path: Path, what: str) -> Image.Image:
    """Open and fully load an image (so corrupt files fail here), turned upright by its EXIF
    orientation; PIL's errors, the decompression-bomb guard's included, become DatasetErrors.

    The pixel limit is checked here, on the header, rather than by turning PIL's warning into
    an error: warning filters are shared by all threads, and decoding runs on several."""
    try:
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and image.width * image.height > limit:
                raise DatasetError(_too_large(path, what, image.width * image.height, limit))
            image.load()
            return ImageOps.exif_transpose(image)
    except DatasetError:
        raise
    except Image.DecompressionBombError as error:  # over twice the limit: refused by open
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        raise DatasetError(_too_large(path, what, int(pixels[1]) if pixels else None,
                                      Image.MAX_IMAGE_PIXELS)) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            struct.error, zlib.error) as error:
        raise DatasetError(f"Cannot read {what} {path}: {type(error).__name__}: {error}"
                           ) from error


def read_image(path: Path) -> Image.Image:
    """Open an image fully (so corrupt files fail here), upright, and convert it to RGB."""
    image = _open_upright(path, "image")
    mode = image.mode
    if mode not in CONVERTIBLE_MODES:
        raise DatasetError(f"Image {path} has mode {mode!r}, which is not supported; "
                           f"save it as 8-bit RGB or greyscale")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def _values(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")


def _grey_mask(path: Path, grey: np.ndarray, note: str = "") -> np.ndarray:
    """0/255 from 8-bit grey values: > 127 is lesion, {0, 1} labels are scaled."""
    histogram = np.bincount(grey.ravel(), minlength=256)
    values = np.flatnonzero(histogram)
    counts = histogram[values]
    top = int(values[-1])
    if top == 1:  # a label mask {0, 1}
        grey = grey * 255
    elif 0 < top < 128:
        raise DatasetError(
            f"Mask {path}{note} has no value above 127 (values found: {_values(values)}); "
            "a label mask with several classes is not a lesion mask: save it as 0/255 "
            "(or 0/1) with the lesion non-zero")
    else:
        labels = values[(values >= 1) & (values <= 63) & (counts >= LABEL_FRACTION * grey.size)]
        if top > 127 and len(labels):
            raise DatasetError(
                f"Mask {path}{note} mixes label value(s) {_values(labels)} (each on at least "
                f"{LABEL_FRACTION:.0%} of it) with values above 127 (values found: "
                f"{_values(values)}); save it as 0/255 with the lesion at 255")
    ambiguous = np.count_nonzero((grey > 63) & (grey < 192)) / grey.size
    if ambiguous > 0.05:
        raise DatasetError(f"Mask {path}{note} is not binary: {ambiguous:.0%} of its pixels are "
                           f"between 64 and 191 (expected 0 and 255)")
    return np.where(grey > 127, 255, 0).astype(np.uint8)


def _colour_mask(path: Path, rgb: np.ndarray, note: str = "") -> np.ndarray:
    """0/255 from a colour mask: black background and exactly one lesion colour."""
    packed = ((rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
              | rgb[..., 2])
    colours = np.unique(packed)
    if len(colours) == 2 and colours[0] == 0:
        return np.where(packed != 0, 255, 0).astype(np.uint8)
    named = [f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in colours.tolist()]
    raise DatasetError(
        f"Mask {path} is a colour mask with {len(colours)} colour(s){note}: "
        f"{_preview(named, 6)}; a colour mask must have exactly two colours, a black "
        "background and one lesion colour (several classes or labels are not a lesion mask)")


def _is_grey(rgb: np.ndarray) -> bool:
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return bool(spread.max() <= GREY_TOLERANCE)


def _decode_mask(path: Path, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(0/255 mask, raw values) of a loaded mask image, by its mode."""
    mode = image.mode
    if mode in ("1", "L", "LA"):
        grey = np.asarray(image.convert("L"))
        return _grey_mask(path, grey), grey
    if mode.startswith("I") and mode != "I;16S":  # 16-bit (I;16, I;16B, ...) or 32-bit "I"
        raw = np.asarray(image).astype(np.int64)
        if raw.min() < 0 or raw.max() > 65535:
            raise DatasetError(f"Mask {path} ({mode}) has values from {raw.min()} to "
                               f"{raw.max()}, outside 0..65535; save it as 8-bit 0/255")
        if raw.max() > 255:  # 16-bit values: scaled to 8 bits (65535 -> 255)
            values, counts = np.unique(raw, return_counts=True)
            labels = values[(values >= 1) & (values <= 255)
                            & (counts >= LABEL_FRACTION * raw.size)]
            if len(labels):  # scaling would turn them into background
                raise DatasetError(
                    f"Mask {path} ({mode}) mixes label value(s) {_values(labels)} (each on at "
                    f"least {LABEL_FRACTION:.0%} of it) with 16-bit values up to {raw.max()}; "
                    "save it as 0/255 with the lesion at 255")
            grey = ((raw * 255 + 32767) // 65535).astype(np.uint8)
            return _grey_mask(path, grey, f" ({mode}, scaled from 16 to 8 bits)"), raw
        return _grey_mask(path, raw.astype(np.uint8), f" ({mode})"), raw
    if mode == "P":
        indices = np.asarray(image)
        used = np.flatnonzero(np.bincount(indices.ravel(), minlength=256))
        palette = np.zeros((256, 3), np.uint8)
        entries = np.asarray(image.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:256]
        palette[: len(entries)] = entries
        if _is_grey(palette[used]):
            return _grey_mask(path, np.asarray(image.convert("L"))), indices
        note = f" (palette indices {_values(used)})"
        return _colour_mask(path, np.asarray(image.convert("RGB")), note), indices
    if mode in ("PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = np.asarray(image.convert("RGB"))
        if _is_grey(rgb):
            return _grey_mask(path, np.asarray(image.convert("L"))), rgb
        return _colour_mask(path, rgb), rgb
    raise DatasetError(f"Mask {path} has mode {mode!r}, which is not supported; save it as "
                       "8-bit greyscale 0/255")


def _check_transparency(path: Path, image: Image.Image, mask: np.ndarray) -> None:
    if image.mode not in ("LA", "PA", "RGBA", "RGBa") and "transparency" not in image.info:
        return
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    if alpha.min() == alpha.max() or np.array_equal(alpha > 127, mask > 0):
        return
    raise DatasetError(
        f"Mask {path} has transparency that disagrees with its colours on "
        f"{np.count_nonzero((alpha > 127) != (mask > 0))} pixels; the lesion is read from the "
        "colours: flatten it onto black or save it without an alpha channel")


def read_mask(path: Path) -> np.ndarray:
    """Read a mask as an HxW 0/255 uint8 array at the file's (upright) size.

    Greyscale: > 127 is lesion, 0/1 label masks are scaled; colour: black background and one
    lesion colour. Anything else, and any file with non-zero pixels that would read as empty,
    raises :class:`DatasetError` (the rules are in the module docstring).
    """
    image = _open_upright(path, "mask")
    mask, raw = _decode_mask(path, image)
    _check_transparency(path, image, mask)
    if not mask.any() and raw.any():  # a safety net behind the rules above
        raise DatasetError(f"Mask {path} has non-zero pixels (values found: "
                           f"{_values(np.unique(raw))}) but reads as empty")
    return mask


def load_pair(pair: Pair, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode, check and resize one pair: (image HxWx3 uint8, mask HxW {0,1} uint8, (H, W)).

    A lesion may vanish in the resized mask only when it is tiny (fewer source pixels than
    :data:`TINY_LESION_PIXELS` training pixels cover), with a warning; otherwise that raises.
    """
    image = read_image(pair.image_path)
    mask = read_mask(pair.mask_path)
    if mask.shape != (image.height, image.width):
        raise DatasetError(
            f"Mask {pair.mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{pair.image_path} is {image.width}x{image.height}")
    soft_mask = Image.fromarray(mask).resize((size, size), Image.Resampling.BILINEAR)
    binary_mask = (np.asarray(soft_mask) > 127).astype(np.uint8)
    lesion = np.count_nonzero(mask)
    if lesion and not binary_mask.any():
        tiny = TINY_LESION_PIXELS * mask.size / (size * size)
        message = (f"Mask {pair.mask_path} has a lesion of {lesion} pixels that vanishes when "
                   f"resized to {size}x{size}")
        if lesion >= tiny:
            raise DatasetError(f"{message}; it is not tiny (at least {tiny:.0f} pixels), so it "
                               "is probably a thin outline: masks must be filled")
        warnings.warn(f"{message} (it is tiny: under {tiny:.0f} pixels); it is trained on as "
                      "an empty mask", stacklevel=2)
    return resize_image(image, size), binary_mask, (image.height, image.width)


@dataclass
class SegmentationSet:
    """One split, decoded and resized: uint8 images (N,S,S,3) and {0,1} masks (N,S,S).

    The arrays are in RAM, or for a split too large for it :class:`~helpers.cache.DiskArray`
    rows on disk (indexed the same way; ``np.asarray`` reads them all).
    """

    ids: list[str]
    images: np.ndarray | DiskArray
    masks: np.ndarray | DiskArray
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
            ids=[self.ids[i] for i in idx], images=_rows(self.images, idx),
            masks=_rows(self.masks, idx),
            original_sizes=self.original_sizes[idx],
            image_paths=[self.image_paths[i] for i in idx] if self.image_paths else [],
            mask_paths=[self.mask_paths[i] for i in idx] if self.mask_paths else [],
            synthetic=self.synthetic)

    def index_of(self, sample_id: str) -> int:
        return self.ids.index(sample_id)

    def coverage(self) -> np.ndarray:
        """The share of each image that is lesion, (N,) (read a block at a time)."""
        blocks = [block.mean(axis=(1, 2)) for block in row_blocks(self.masks)]
        return np.concatenate(blocks) if blocks else np.zeros(0)


def _rows(array: np.ndarray | DiskArray, idx: np.ndarray) -> np.ndarray | DiskArray:
    """The rows at ``idx``: a copy in RAM, or for a DiskArray a DiskArray (nothing read)."""
    return array.take(idx) if isinstance(array, DiskArray) else array[idx]


def _legacy_cache_name(layout: SplitLayout) -> str:
    """The folder name earlier versions used: the images folder alone (two layouts sharing
    it, or folders whose names differ only in odd characters, shared one cache)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", layout.images_dir.resolve().as_posix().strip("/"))[-80:]


def _cache_name(layout: SplitLayout) -> str:
    """The readable end of the images folder's path, then a digest of the whole layout
    (images folder, masks folder and mask pattern), so that no two layouts share a cache."""
    layout_id = json.dumps([layout.images_dir.resolve().as_posix(),
                            layout.masks_dir.resolve().as_posix(), layout.mask_pattern])
    digest = hashlib.sha256(layout_id.encode()).hexdigest()[:12]
    return f"{_legacy_cache_name(layout)[-60:]}-{digest}"


def default_cache_dir() -> Path:
    """``$LESIONKIT_CACHE``, else ``data/cache`` in the repository."""
    env = os.environ.get("LESIONKIT_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / "cache"


def default_workers() -> int:
    """Decoding threads: one per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def _remove_old_caches(cache_dir: Path, layout: SplitLayout, size: int) -> None:
    """Superseded caches of this split and size: version-2 files (one ``.npz`` each) and the
    folder of the earlier naming (:func:`_legacy_cache_name`)."""
    stem = f"{_legacy_cache_name(layout)}-{size}"
    old_name = re.compile(re.escape(stem) + r"-[0-9a-f]{20}\.npz")
    for old in cache_dir.glob(f"{glob.escape(stem)}-*.npz"):
        if old_name.fullmatch(old.name):
            with contextlib.suppress(OSError):
                old.unlink(missing_ok=True)
    old_folder = cache_dir / stem
    if any(old_folder.glob("shard-*.json")):
        shutil.rmtree(old_folder, ignore_errors=True)


def load_split(layout: SplitLayout, size: int = 128, cache_dir: str | Path | None = None,
               progress: bool = True, in_memory_gb: float = IN_MEMORY_LIMIT_GB,
               workers: int | None = None) -> SegmentationSet:
    """Load one split resized to ``size``×``size``, decoding only what the cache lacks.

    The arrays are held in RAM when they take at most ``in_memory_gb`` GiB; a larger split
    stays on disk as :class:`~helpers.cache.DiskArray` rows, read batch by batch (slower, but
    the data may be larger than the RAM). ``workers``: threads that decode (default: one
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
    _remove_old_caches(cache_dir, layout, size)
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
    from helpers.synthetic import write_synthetic_isic2016  # here: it imports this module

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
