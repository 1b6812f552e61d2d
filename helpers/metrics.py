"""Per-image segmentation metrics, averaged over images as the ISIC challenge does.

Thresholded metrics binarise the predicted probability at 0.5 (``p > 0.5``) and count, per
image, true/false positives/negatives. Then

* IoU (Jaccard) = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN),
* accuracy = (TP + TN) / all, sensitivity = TP / (TP + FN), specificity = TN / (TN + FP).

**Empty-mask rule** (the official ``isic-challenge-scoring`` convention): a ratio whose
denominator is zero is 1.0. So an image with no lesion in the truth and none predicted scores
IoU = Dice = 1; with no lesion in the truth but some predicted, IoU = Dice = 0.

Soft metrics (report A's numbers look like these) use the probabilities directly:
soft Dice = 2Σpg / (Σp + Σg), soft IoU = Σpg / (Σp + Σg − Σpg). The empty rule applies only
when every probability is exactly 0, which a sigmoid never gives: on an image without a
lesion a soft score is 0 however small the probabilities (ISIC 2016 has no such image).
Every function returns one value per image; average them for the usual "mean IoU".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from helpers.errors import UsageError

THRESHOLD = 0.5


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` per image, and 1.0 where the denominator is 0."""
    # BEGIN SOLUTION exercise 3: per-image IoU and Dice with the empty-mask rule
    # HINT: the empty-mask rule: where the denominator is 0 the ratio is 1.0 (no NaN, no warning)
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.ones_like(numerator))
    # END SOLUTION


def check_threshold(threshold: float) -> None:
    """Refuse a threshold outside (0, 1): every pixel, or none, would be lesion."""
    if not 0 < threshold < 1:
        raise UsageError(f"threshold must be between 0 and 1, not {threshold}")


def confusion(probs: Tensor, truth: Tensor, threshold: float = THRESHOLD) -> dict[str, Tensor]:
    """Per-image TP, FP, FN, TN counts (float64) for probabilities (B, ...) and {0,1} truth."""
    pred = (probs > threshold).flatten(1)
    true = truth.flatten(1) > 0.5
    tp = (pred & true).sum(1, dtype=torch.float64)
    fp = (pred & ~true).sum(1, dtype=torch.float64)
    fn = (~pred & true).sum(1, dtype=torch.float64)
    tn = pred.shape[1] - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def iou_and_dice(counts: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Per-image IoU and Dice from :func:`confusion`'s counts, with the empty-mask rule."""
    # BEGIN SOLUTION exercise 3: per-image IoU and Dice with the empty-mask rule
    # HINT: IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN), each through _ratio
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return _ratio(tp, tp + fp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    # END SOLUTION


def per_image_scores(probs: Tensor, truth: Tensor, threshold: float = THRESHOLD
                     ) -> dict[str, Tensor]:
    """Thresholded and soft per-image metrics for a batch; each value has shape (B,)."""
    c = confusion(probs, truth, threshold)
    p = probs.flatten(1).double()
    g = truth.flatten(1).double()
    overlap, p_sum, g_sum = (p * g).sum(1), p.sum(1), g.sum(1)
    iou, dice = iou_and_dice(c)
    return {
        "iou": iou,
        "dice": dice,
        "accuracy": (c["tp"] + c["tn"]) / (c["tp"] + c["tn"] + c["fp"] + c["fn"]),
        "sensitivity": _ratio(c["tp"], c["tp"] + c["fn"]),
        "specificity": _ratio(c["tn"], c["tn"] + c["fp"]),
        "soft_iou": _ratio(overlap, p_sum + g_sum - overlap),
        "soft_dice": _ratio(2 * overlap, p_sum + g_sum),
    }


def score_table(probs: np.ndarray | Tensor, truth: np.ndarray | Tensor,
                ids: list[str] | None = None, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Per-image metrics as a DataFrame indexed by image id (one row per image)."""
    truth = truth if isinstance(truth, Tensor) else np.asarray(truth)  # also a DiskArray
    scores = per_image_scores(torch.as_tensor(probs), torch.as_tensor(truth), threshold)
    frame = pd.DataFrame({name: value.numpy() for name, value in scores.items()})
    if ids is not None:
        frame.index = pd.Index(ids, name="id")
    return frame
