"""Test-set evaluation: predictions, official ISIC scoring at full resolution, and comparing
two models.

The official scorer (``isic-challenge-scoring``) reads PNG masks from two folders. We upsample
each predicted probability map to its image's original size, threshold it at 0.5, write it
as a 0/255 PNG next to the ground truth as the kit reads it, and let the scorer compare them.
The scorer wants ``ISIC_<7 digits>`` names, so files are written under such names (any id
scheme works).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from isic_challenge_scoring import metrics as official
from isic_challenge_scoring.confusion import create_binary_confusion_matrix
from isic_challenge_scoring.segmentation import SegmentationScore
from PIL import Image
from scipy import stats
from tqdm.auto import tqdm

from helpers.batches import TensorSet, batch_indices
from helpers.data import DatasetError, SegmentationSet, read_mask
from helpers.device import autocast
from helpers.model import MobileNetV2UNet
from helpers.train import TrainConfig


@torch.no_grad()
def predict(model: MobileNetV2UNet, data: SegmentationSet | TensorSet, config: TrainConfig,
            progress: bool = False) -> np.ndarray:
    """Lesion probabilities (N, H, W) float32 for every sample of ``data``, in order."""
    data = data if isinstance(data, TensorSet) else TensorSet(data)
    device = config.resolved_device()
    model.eval()
    out = []
    for index in tqdm(list(batch_indices(len(data), config.eval_batch_size, shuffle=False)),
                      desc="Predicting", disable=not progress, leave=False):
        images, _ = data.batch(index, device, config.channels_last)
        with autocast(device, config.amp):
            logits = model(images)
        out.append(torch.sigmoid(logits.float())[:, 0].cpu())
    return torch.cat(out).numpy()


def upsample(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one probability map (h, w) to (height, width)."""
    tensor = torch.from_numpy(np.ascontiguousarray(probs))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def official_isic_scores(probs: np.ndarray, data: SegmentationSet, threshold: float = 0.5
                         ) -> tuple[pd.DataFrame, pd.Series]:
    """Score predictions with ``isic-challenge-scoring`` at each image's original resolution.

    The truth is each mask file as the kit's loader reads it (:func:`helpers.data.read_mask`:
    the same checks and the same binarisation as for training), written as a 0/255 PNG for
    the scorer, so the scores always agree with what the model was trained on.

    Returns the per-image table (accuracy, sensitivity, specificity, jaccard,
    threshold_jaccard, dice; indexed by id) and the scorer's own macro average.
    """
    if not data.mask_paths:
        raise ValueError("official scoring needs the ground-truth files (mask_paths)")
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        truth_dir, pred_dir = Path(folder, "truth"), Path(folder, "pred")
        truth_dir.mkdir()
        pred_dir.mkdir()
        for number, (sample_id, prob, size, truth_path) in enumerate(
                zip(data.ids, probs, data.original_sizes, data.mask_paths, strict=True)):
            name = f"ISIC_{number:07d}"
            truth = read_mask(Path(truth_path))  # 0/255 at the original size
            if truth.shape != (int(size[0]), int(size[1])):
                raise DatasetError(f"Mask {truth_path} is {truth.shape[1]}x{truth.shape[0]} "
                                   f"but its image was {size[1]}x{size[0]} when loaded")
            Image.fromarray(truth).save(truth_dir / f"{name}_Segmentation.png")
            full = upsample(prob, int(size[0]), int(size[1])) > threshold
            Image.fromarray((full * 255).astype(np.uint8)).save(pred_dir / f"{name}.png")
            cm = create_binary_confusion_matrix(truth_binary_values=truth > 127,
                                                prediction_binary_values=full)
            rows[sample_id] = {
                "accuracy": official.binary_accuracy(cm),
                "sensitivity": official.binary_sensitivity(cm),
                "specificity": official.binary_specificity(cm),
                "jaccard": official.binary_jaccard(cm),
                "threshold_jaccard": official.binary_threshold_jaccard(cm),
                "dice": official.binary_dice(cm)}
        macro = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    per_image = pd.DataFrame.from_dict(rows, orient="index")
    per_image.index.name = "id"
    return per_image, macro


def paired_comparison(first: pd.Series, second: pd.Series, n_bootstrap: int = 10_000,
                      seed: int = 0) -> dict[str, float]:
    """Is ``second`` better than ``first`` on the same images? (e.g. per-image Dice)

    Counts wins, runs the Wilcoxon signed-rank test and a paired t-test, and gives a
    percentile bootstrap 95% confidence interval of the mean difference (second − first).
    """
    diff = (second - first).to_numpy()
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_bootstrap, len(diff)))].mean(axis=1)
    nonzero = diff[diff != 0]
    return {
        "images": len(diff),
        "second_better": int((diff > 0).sum()),
        "first_better": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "mean_difference": float(diff.mean()),
        "ci95_low": float(np.percentile(means, 2.5)),
        "ci95_high": float(np.percentile(means, 97.5)),
        "wilcoxon_p": float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0,
        "paired_t_p": float(stats.ttest_rel(second, first).pvalue) if len(diff) > 1 else 1.0,
    }
