"""Our per-image metrics against the official ISIC scorer, ``isic-challenge-scoring``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from isic_challenge_scoring import metrics as official
from isic_challenge_scoring.confusion import create_binary_confusion_matrix

from helpers.metrics import per_image_scores, score_table


def official_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-image scores the way the official scorer computes them (0/255 images, > 128)."""
    cm = create_binary_confusion_matrix(truth_binary_values=truth * 255 > 128,
                                        prediction_binary_values=pred * 255 > 128)
    return {"iou": official.binary_jaccard(cm), "dice": official.binary_dice(cm),
            "accuracy": official.binary_accuracy(cm),
            "sensitivity": official.binary_sensitivity(cm),
            "specificity": official.binary_specificity(cm)}


def edge_cases(size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    empty, full = np.zeros((size, size), np.uint8), np.ones((size, size), np.uint8)
    dot = empty.copy()
    dot[3, 4] = 1
    other_dot = empty.copy()
    other_dot[9, 9] = 1
    half = empty.copy()
    half[:, : size // 2] = 1
    return [(empty, empty), (empty, full), (full, empty), (full, full), (dot, dot),
            (dot, other_dot), (empty, dot), (dot, empty), (half, full), (full, half)]


def random_cases(count: int = 40, size: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(count):
        density_pred, density_truth = rng.uniform(0, 1, 2)
        cases.append(((rng.random((size, size)) < density_pred).astype(np.uint8),
                      (rng.random((size, size)) < density_truth).astype(np.uint8)))
    return cases


@pytest.mark.parametrize("cases", [edge_cases(), random_cases()], ids=["edge", "random"])
def test_per_image_metrics_equal_the_official_scorer(cases) -> None:
    # Probabilities on both sides of the 0.5 threshold give the same binary prediction.
    rng = np.random.default_rng(1)
    probs = np.stack([np.where(p == 1, rng.uniform(0.51, 1, p.shape), rng.uniform(0, 0.5, p.shape))
                      for p, _ in cases])
    truth = np.stack([t for _, t in cases])
    ours = per_image_scores(torch.tensor(probs), torch.tensor(truth))
    for i, (pred, true) in enumerate(cases):
        expected = official_scores(pred, true)
        for name, value in expected.items():
            assert abs(ours[name][i].item() - value) <= 1e-6, (i, name)


def test_empty_mask_rule() -> None:
    empty = torch.zeros(1, 8, 8)
    dot = empty.clone()
    dot[0, 2, 2] = 1
    both_empty = per_image_scores(empty, empty)
    assert both_empty["iou"].item() == 1 and both_empty["dice"].item() == 1
    assert both_empty["soft_dice"].item() == 1
    false_alarm = per_image_scores(dot, empty)
    assert false_alarm["iou"].item() == 0 and false_alarm["dice"].item() == 0


def test_soft_metrics() -> None:
    truth = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    probs = torch.tensor([[[0.8, 0.6], [0.4, 0.0]]])
    scores = per_image_scores(probs, truth)
    overlap, p_sum, g_sum = 1.4, 1.8, 2.0
    assert scores["soft_dice"].item() == pytest.approx(2 * overlap / (p_sum + g_sum))
    assert scores["soft_iou"].item() == pytest.approx(overlap / (p_sum + g_sum - overlap))
    # thresholded at 0.5: prediction [[1, 1], [0, 0]] equals the truth
    assert scores["dice"].item() == 1 and scores["iou"].item() == 1


def test_score_table_is_one_row_per_image() -> None:
    truth = np.zeros((3, 4, 4), np.uint8)
    table = score_table(np.zeros((3, 4, 4), np.float32), truth, ids=["a", "b", "c"])
    assert list(table.index) == ["a", "b", "c"] and (table["dice"] == 1).all()
