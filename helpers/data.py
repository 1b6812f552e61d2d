"""Finding, checking and decoding image/mask pairs: from one sample's files to its arrays.

A split is an images folder and a masks folder (:class:`SplitLayout`), each mask named after
its image's id by a pattern such as ``"{id}_mask.png"``. :func:`find_pairs` pairs the files,
:func:`load_pair` decodes, checks and resizes one pair, and a :class:`SegmentationSet` holds a
whole split (:func:`helpers.decode.load_split` loads one through the decode cache).

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
* Greyscale masks (8-bit, or 16-bit scaled to 8 bits) are binarised at > 127; 0/1 label masks
  are scaled to 0/255; a mask with more than 5% of its pixels between 64 and 191 is refused as
  not binary. A mask whose non-zero values are all below 128 (a label mask such as {0, 1, 2})
  or that mixes a label value covering at least 1% of it with values above 127 (such as
  {0, 1, 255}) is refused, naming the values.
* Colour masks (RGB, or a palette whose used colours are not grey) are read by colour: exactly
  two colours, one of them black, mean lesion = the other colour (a Pascal-VOC dark red
  palette index, a red RGB lesion); any other set of colours is refused, naming them. RGB
  masks whose pixels are all grey (within a channel spread of 32) are greyscale masks.
* Transparency is ignored unless it varies and disagrees with the colours, which is refused.
* A mask file with non-zero pixels never loads as empty. After resizing to the training size a
  lesion may vanish only when it is tiny (under four training pixels' worth of source pixels),
  with a warning; a larger lesion that vanishes (a thin outline) is refused.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers.errors import DatasetError
from helpers.system.cache import DiskArray, row_blocks

# An image over PIL's pixel limit is refused below, naming the file (_open_upright), so PIL's
# own warning about it, printed just before, adds nothing. Set once here: a filter changed
# while the decoding threads run would be changed for all of them.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

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


@dataclass(frozen=True)
class SplitLayout:
    """Where one split's images and masks are, and how a mask file is named from an image id."""

    images_dir: Path
    masks_dir: Path
    mask_pattern: str = "{id}_Segmentation.png"


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


def resize_image(image: Image.Image, size: int) -> np.ndarray:
    """An RGB image resized to ``size`` x ``size`` as the network sees it (H, W, 3) uint8."""
    resized = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(resized, dtype=np.uint8)


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

    The arrays are in RAM, or for a split too large for it :class:`~helpers.system.cache.DiskArray`
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
