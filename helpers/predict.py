"""Masks for your own images from a trained model.

    python -m helpers predict --run reports/report_a/runs/fine_tuned --images DIR --out DIR

For every image in ``DIR`` that the loader accepts (the same rules as for training: EXIF
orientation applied, odd modes converted, unreadable or oversized files refused by name, two
files for one id refused) it writes, in ``--out``:

    <id>_mask.png      the lesion mask at the image's original size, 0 or 255
    <id>_overlay.png   the image with the mask's outline drawn in yellow

The model sees each image as in training (resized to the run's image size, ImageNet
normalisation; ``--flips`` averages over the four flips); its probabilities are upsampled to
the original size and thresholded, as in the official scoring. The checkpoint, threshold and
flips are those notebook 04 scored the model with (the run's ``scoring.json``), unless given;
without that record, the last checkpoint at 0.5 without flips. Batched, with a progress bar,
on the CPU or a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from helpers.batches import normalise
from helpers.config import TrainConfig, problem_with
from helpers.data import find_images, read_image, resize_image
from helpers.errors import UsageError
from helpers.evaluate import probabilities, upsample
from helpers.model import MobileNetV2UNet
from helpers.runs.scoring import load_scored_run
from helpers.system.atomic import atomic_path
from helpers.system.writable import output_folder
from helpers.train import placement

OUTLINE_COLOUR = (255, 230, 0)


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The boundary pixels of a 0/255 mask (H, W) as a boolean array: mask pixels with a
    background pixel less than ``width`` + 1 pixels away (in a square; the image's edge
    repeats its border pixels).

    A pixel is inside when its (2 ``width`` + 1)² window is all mask. The windows are summed
    with a summed-area table, so the cost is a few passes over the mask whatever the width:
    a 6000x4000 photo takes a fraction of a second, where a min filter would take about a
    minute at the width such a photo gets.
    """
    k = 2 * width + 1
    solid = mask > 0
    padded = np.pad(solid, width, mode="edge")
    counts = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1),
                      np.int32 if padded.size < 2**31 else np.int64)
    np.cumsum(padded, axis=0, out=counts[1:, 1:])
    np.cumsum(counts[1:, 1:], axis=1, out=counts[1:, 1:])
    window = counts[k:, k:] - counts[:-k, k:] - counts[k:, :-k] + counts[:-k, :-k]
    return solid & (window < k * k)


def overlay(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """``image`` with ``mask``'s outline drawn on it."""
    pixels = np.array(image)
    pixels[outline(mask, width=max(1, round(max(image.size) / 400)))] = OUTLINE_COLOUR
    return Image.fromarray(pixels)


@torch.no_grad()
def predict_masks(model: MobileNetV2UNet, config: TrainConfig, images: list[Image.Image],
                  size: int, threshold: float = 0.5, flips: bool = False) -> list[np.ndarray]:
    """0/255 masks at each image's original size for a batch of RGB images (``flips``:
    averaged over the four flips, as the test-set evaluation with ``test_time_flips``)."""
    device, channels_last = placement(config)
    batch = torch.from_numpy(np.stack([resize_image(image, size) for image in images]))
    batch = normalise(batch.to(device).permute(0, 3, 1, 2))
    if not channels_last:
        batch = batch.contiguous()
    probs = probabilities(model.eval(), batch, config, flips)[:, 0].cpu().numpy()
    return [((upsample(prob, image.height, image.width) > threshold) * 255).astype(np.uint8)
            for prob, image in zip(probs, images, strict=True)]


def predict_folder(run_dir: str | Path, images_dir: str | Path, out_dir: str | Path,
                   checkpoint: str | None = None, batch_size: int = 8,
                   device: str | None = None, threshold: float | None = None,
                   progress: bool = True, flips: bool | None = None) -> list[Path]:
    """Write a mask and an overlay for every image in ``images_dir``; return the mask paths.

    ``checkpoint``, ``threshold`` and ``flips`` not given are those notebook 04 scored the
    model with (:func:`helpers.evaluate.load_scored_run`). A file the loader refuses stops
    the run with its name; the masks written before it are complete (every file is written
    atomically), and running again rewrites them all.
    """
    problem = problem_with("batch_size", batch_size)
    if problem:
        raise UsageError(f"batch_size {problem}")
    out_dir = output_folder(out_dir, inputs=[images_dir])
    model, config, size, scoring = load_scored_run(run_dir, checkpoint, threshold, flips,
                                                   device)
    print(f"Masks from the {scoring.describe()}")  # also without progress: which masks these are
    threshold, flips = scoring.threshold, scoring.flips
    files = find_images(Path(images_dir))
    ids = list(files)
    written = []
    with tqdm(total=len(ids), desc="Predicting masks", unit="image", disable=not progress) as bar:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            images = [read_image(files[sample_id]) for sample_id in chunk]
            for sample_id, image, mask in zip(
                    chunk, images, predict_masks(model, config, images, size, threshold, flips),
                    strict=True):
                with atomic_path(out_dir / f"{sample_id}_mask.png") as tmp:
                    Image.fromarray(mask).save(tmp)
                with atomic_path(out_dir / f"{sample_id}_overlay.png") as tmp:
                    overlay(image, mask).save(tmp)
                written.append(out_dir / f"{sample_id}_mask.png")
            bar.update(len(chunk))
    return written

