"""Test-set evaluation: official ISIC scoring at full resolution, and comparing two models.

The official scorer (``isic-challenge-scoring``) reads PNG masks from two folders. We upsample
each predicted probability map to its image's original size, threshold it at 0.5, write it
as a 0/255 PNG and let the scorer compare it with the original ground-truth file. The scorer
wants ``ISIC_<7 digits>`` names, so files are linked under such names (any id scheme works).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from isic_challenge_scoring import metrics as official
from isic_challenge_scoring.confusion import create_binary_confusion_matrix
from isic_challenge_scoring.load_image import load_segmentation_image
from isic_challenge_scoring.segmentation import SegmentationScore
from PIL import Image
from scipy import stats

from helpers.dataset import SegmentationSet


def upsample(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one probability map (h, w) to (height, width)."""
    tensor = torch.from_numpy(np.ascontiguousarray(probs))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def official_isic_scores(probs: np.ndarray, data: SegmentationSet, threshold: float = 0.5
                         ) -> tuple[pd.DataFrame, pd.Series]:
    """Score predictions with ``isic-challenge-scoring`` at each image's original resolution.

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
        for number, (sample_id, prob, size, truth) in enumerate(
                zip(data.ids, probs, data.original_sizes, data.mask_paths, strict=True)):
            name = f"ISIC_{number:07d}"
            os.symlink(Path(truth).resolve(), truth_dir / f"{name}_Segmentation.png")
            full = upsample(prob, int(size[0]), int(size[1])) > threshold
            Image.fromarray((full * 255).astype(np.uint8)).save(pred_dir / f"{name}.png")
            cm = create_binary_confusion_matrix(
                truth_binary_values=load_segmentation_image(truth) > 128,
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
