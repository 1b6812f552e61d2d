"""Hidden checks of exercise 3 (instructor only): batches, channel dimensions, no NaN, and
agreement with counts computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.metrics import per_image_scores


def test_a_batch_with_a_channel_dimension_scores_each_image() -> None:
    rng = np.random.default_rng(3)
    truth = torch.tensor(rng.random((5, 1, 8, 8)) > 0.6, dtype=torch.float32)
    probs = torch.tensor(rng.random((5, 1, 8, 8)), dtype=torch.float32)
    truth[0] = 0
    probs[0] = 0.2  # image 0: both empty
    scores = per_image_scores(probs, truth)
    assert scores["iou"].shape == (5,) and scores["dice"].shape == (5,)
    for i in range(1, 5):
        pred, true = probs[i].numpy() > 0.5, truth[i].numpy() > 0.5
        tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
        assert scores["iou"][i].item() == pytest.approx(tp / (tp + fp + fn))
        assert scores["dice"][i].item() == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert scores["iou"][0].item() == 1 and scores["dice"][0].item() == 1


def test_no_nan_on_empty_masks() -> None:
    empty = torch.zeros(3, 16, 16)
    scores = per_image_scores(empty, empty)
    for name, value in scores.items():
        assert not torch.isnan(value).any(), name
