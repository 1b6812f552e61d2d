"""Test-set evaluation: predictions, official ISIC scoring at full resolution, and comparing
two models.

The official scorer (``isic-challenge-scoring``) reads PNG masks from two folders. We upsample
each predicted probability map to its image's original size, threshold it (0.5 unless a
threshold was chosen on validation images), write it as a 0/255 PNG next to the ground truth
as the kit reads it, and let the scorer compare them.
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
from torch import Tensor
from tqdm.auto import tqdm

from helpers.batches import TensorSet, batch_indices
from helpers.config import TrainConfig
from helpers.data import SegmentationSet, SplitLayout, read_mask
from helpers.decode import load_split
from helpers.errors import DatasetError
from helpers.metrics import per_image_scores
from helpers.model import MobileNetV2UNet
from helpers.runs.scoring import Scoring, load_scored_run
from helpers.system.device import autocast, reusing_freed_memory
from helpers.train import placement

#: Test-time flips: each is a tuple of the image axes flipped (none, left-right, up-down, both).
FLIPS = ((), (-1,), (-2,), (-2, -1))


@torch.no_grad()
def predict(model: MobileNetV2UNet, data: SegmentationSet | TensorSet, config: TrainConfig,
            progress: bool = False, flips: bool = False) -> np.ndarray:
    """Lesion probabilities (N, H, W) float32 for every sample of ``data``, in order.

    With ``flips`` each image is also predicted flipped left-right, up-down and both, each
    prediction is flipped back, and the four probabilities are averaged (test-time
    augmentation: four times the work, smoother and usually slightly better masks).
    """
    data = data if isinstance(data, TensorSet) else TensorSet(data)
    device, channels_last = placement(config)
    model.eval()
    out = []
    with reusing_freed_memory(device):  # faster on a Linux CPU; same results
        for index in tqdm(list(batch_indices(len(data), config.eval_batch_size, shuffle=False)),
                          desc="Predicting", disable=not progress, leave=False):
            images, _ = data.batch(index, device, channels_last)
            out.append(probabilities(model, images, config, flips)[:, 0].cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def probabilities(model: MobileNetV2UNet, images: Tensor, config: TrainConfig,
                  flips: bool = False) -> Tensor:
    """The model's lesion probabilities (B, 1, H, W) for a batch of normalised images,
    averaged over the four flips with ``flips`` (see :func:`predict`)."""
    views = FLIPS if flips else ((),)
    probs = 0
    for dims in views:  # the plain view is used as it is, without a copy
        with autocast(placement(config)[0], config.amp):
            logits = model(images.flip(dims) if dims else images)
        prob = torch.sigmoid(logits.float())
        probs = probs + (prob.flip(dims) if dims else prob)
    return probs / len(views)


def choose_threshold(probs: np.ndarray, masks: np.ndarray,
                     candidates: tuple[float, ...] = tuple(np.round(np.arange(0.2, 0.81, 0.05), 2))
                     ) -> tuple[float, pd.Series]:
    """The threshold with the highest mean per-image Jaccard on a *validation* set, and the
    mean Jaccard of every candidate. Choose it on held-out images, never on the test set."""
    probs_t, truth = torch.from_numpy(probs), torch.from_numpy(np.asarray(masks)).float()
    means = {float(t): per_image_scores(probs_t, truth, float(t))["iou"].mean().item()
             for t in candidates}
    table = pd.Series(means, name="mean_jaccard")
    table.index.name = "threshold"
    return float(table.idxmax()), table


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
    The two are paired by their index (the image ids), whatever their order; both must
    score the same images.
    """
    if not first.index.is_unique or not second.index.is_unique:
        raise ValueError("paired_comparison: an image id appears twice in a score table")
    if set(first.index) != set(second.index):
        only = sorted(map(str, set(first.index) ^ set(second.index)))
        raise ValueError(f"paired_comparison: the two score tables cover different images "
                         f"({len(only)} in one only, e.g. {', '.join(only[:5])})")
    first, second = first.to_numpy(dtype=float), second.reindex(first.index).to_numpy(dtype=float)
    diff = second - first
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


def evaluate_folder(run_dir: str | Path, images_dir: str | Path, masks_dir: str | Path,
                    mask_pattern: str = "{id}_Segmentation.png", checkpoint: str | None = None,
                    flips: bool | None = None, threshold: float | None = None,
                    device: str | None = None, progress: bool = True
                    ) -> tuple[pd.DataFrame, pd.Series, np.ndarray, SegmentationSet, Scoring]:
    """Score a trained model on any folder of images and masks with the official scorer.

    The pairs are found and read by the training loader's rules (a missing mask, a duplicate
    id or an unreadable file stops with its name), resized to the size the model was trained
    at, predicted (``flips``: test-time flip averaging) and scored at each image's original
    size. ``checkpoint``, ``flips`` and ``threshold`` not given are those notebook 04 scored
    the model with (:func:`load_scored_run`). Returns the per-image table (worst Jaccard
    first), the scorer's macro average, the probabilities at the training size, the loaded
    set (in the loader's id order) and the scoring used.
    """
    model, config, size, scoring = load_scored_run(run_dir, checkpoint, threshold, flips,
                                                   device)
    print(f"Scoring the {scoring.describe()}")  # also without progress: which masks these are
    threshold, flips = scoring.threshold, scoring.flips
    data = load_split(SplitLayout(Path(images_dir), Path(masks_dir), mask_pattern), size,
                      progress=progress)
    probs = predict(model, data, config, progress=progress, flips=flips)
    per_image, macro = official_isic_scores(probs, data, threshold)
    return per_image.sort_values("jaccard"), macro, probs, data, scoring

