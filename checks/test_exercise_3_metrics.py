"""Exercise 3: per-image IoU and Dice with the empty-mask rule (helpers/metrics.py)."""

from __future__ import annotations

import pytest
import torch

from helpers.metrics import per_image_scores

# 4x4 toy masks: the truth has a 2x2 lesion; the prediction finds two of its pixels and
# adds one outside it: TP = 2, FP = 1, FN = 2.
TRUTH = torch.zeros(1, 4, 4)
TRUTH[0, 1:3, 1:3] = 1
PROBS = torch.zeros(1, 4, 4)
PROBS[0, 1, 1:3] = 0.9
PROBS[0, 0, 0] = 0.8
EMPTY = torch.zeros(1, 4, 4)


def test_iou_and_dice_on_toy_masks() -> None:
    scores = per_image_scores(PROBS, TRUTH)
    assert scores["iou"].shape == (1,), f"expected one IoU per image, shape (1,), got " \
                                        f"{tuple(scores['iou'].shape)}"
    iou, dice = scores["iou"].item(), scores["dice"].item()
    assert iou == pytest.approx(2 / 5), (
        f"on the toy masks (TP=2, FP=1, FN=2) IoU was {iou:.4f}; expected TP/(TP+FP+FN) = "
        f"2/5 = 0.4000")
    assert dice == pytest.approx(4 / 7), (
        f"on the toy masks (TP=2, FP=1, FN=2) Dice was {dice:.4f}; expected 2TP/(2TP+FP+FN) "
        f"= 4/7 = 0.5714")


def test_both_masks_empty_scores_one() -> None:
    scores = per_image_scores(EMPTY, EMPTY)
    iou, dice = scores["iou"].item(), scores["dice"].item()
    assert iou == 1 and dice == 1, (
        f"with no lesion in the truth and none predicted, IoU was {iou} and Dice {dice}; the "
        "empty-mask rule says 1.0 for both (0/0 counts as a perfect score)")


def test_a_lesion_predicted_on_an_empty_truth_scores_zero() -> None:
    scores = per_image_scores(PROBS, EMPTY)
    iou, dice = scores["iou"].item(), scores["dice"].item()
    assert iou == 0 and dice == 0, (
        f"with no lesion in the truth but 3 pixels predicted, IoU was {iou} and Dice {dice}; "
        "expected 0 for both")
