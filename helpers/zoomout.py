"""Zoomed-out copies of images and masks: does a model trained on tight crops still work on
the wider views real dermoscopy images have?

The shared ISIC images are 512×512 centre crops, so the lesion fills most of each image. Real
dermoscopy images show more skin around it, and often the dark ring of the dermatoscope. A
zoomed-out copy shrinks the image by ``factor`` into the centre of a canvas of the same size
filled with the image's own border colour (skin), and blacks out everything outside the
inscribed circle (the ring). The mask is shrunk the same way. The training-time version,
with random factors and positions, is :func:`helpers.batches.scale_augment`.

    python -m helpers zoomout --images DIR --masks DIR --factor 0.6 --out DIR

writes ``DIR/images`` and ``DIR/masks`` at each file's original size, ready for
``python -m helpers evaluate``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from helpers.batches import RING_COLOUR, zoom
from helpers.data import SegmentationSet, find_images, read_image, read_mask
from helpers.errors import DatasetError, UsageError
from helpers.system.atomic import atomic_path
from helpers.system.writable import output_folder

#: Radius of the dermatoscope's ring (1 = half the image width: the inscribed circle).
RING_RADIUS = 1.0


def zoom_out(images: np.ndarray, masks: np.ndarray, factor: float, ring: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """Centred zoomed-out copies of uint8 images (N,H,W,3) and {0,1} or 0/255 masks (N,H,W),
    with the masks' values kept."""
    if not 0 < factor <= 1:
        raise UsageError(f"factor must be in (0, 1], not {factor}")
    images, masks = np.array(images), np.array(masks)  # copies (also of a DiskArray)
    batch = len(images)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    top = float(masks.max()) if masks.size else 1.0
    mask_tensor = torch.from_numpy(masks).float()[:, None] / max(top, 1)
    radii = torch.full((batch,), RING_RADIUS if ring else float("inf"))
    out, out_masks = zoom(tensor, mask_tensor, torch.full((batch,), float(factor)),
                          torch.zeros(batch, 2), radii, torch.tensor(RING_COLOUR).float())
    out_images = out.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).contiguous()
    return out_images.numpy(), (out_masks[:, 0] * max(top, 1)).to(torch.uint8).numpy()


def zoom_out_set(data: SegmentationSet, factor: float, ring: bool = True) -> SegmentationSet:
    """``data`` with every image and mask zoomed out (at the set's training resolution)."""
    images, masks = zoom_out(data.images, data.masks, factor, ring)
    return dataclasses.replace(data, images=images, masks=masks, image_paths=[], mask_paths=[])


def write_zoomed_folder(images_dir: str | Path, masks_dir: str | Path, out_dir: str | Path,
                        factor: float, mask_suffix: str = "_Segmentation", ring: bool = True,
                        progress: bool = True) -> int:
    """Zoomed-out copies, at original size, of every image in ``images_dir`` and its mask
    (``<id><mask_suffix>.png`` in ``masks_dir``), written to ``out_dir/images`` and
    ``out_dir/masks`` under the same names. Returns how many pairs were written."""
    out_dir = Path(out_dir)
    for written in (out_dir, out_dir / "images", out_dir / "masks"):
        output_folder(written, inputs=[images_dir, masks_dir])
    images, masks_dir = find_images(Path(images_dir)), Path(masks_dir)
    for sample_id, image_path in tqdm(images.items(), desc=f"Zooming out x{factor}",
                                      disable=not progress):
        mask_path = masks_dir / f"{sample_id}{mask_suffix}.png"
        if not mask_path.is_file():
            raise DatasetError(f"No mask for {image_path}: expected {mask_path}")
        image = np.asarray(read_image(image_path))[None]
        mask = read_mask(mask_path)[None]
        if mask.shape[1:] != image.shape[1:3]:
            raise DatasetError(f"Mask {mask_path} is {mask.shape[2]}x{mask.shape[1]} but "
                               f"{image_path} is {image.shape[2]}x{image.shape[1]}")
        new_image, new_mask = zoom_out(image, mask, factor, ring)
        with atomic_path(out_dir / "images" / f"{sample_id}.png") as tmp:
            Image.fromarray(new_image[0]).save(tmp, format="PNG")
        with atomic_path(out_dir / "masks" / mask_path.name) as tmp:
            Image.fromarray(new_mask[0]).save(tmp, format="PNG")
    return len(images)

