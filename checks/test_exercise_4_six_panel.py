"""Exercise 4: the thresholded 6-panel figure at 0.5 (helpers/plots.py)."""

from __future__ import annotations

import numpy as np

from helpers.plots import six_panel_row

IMAGE = np.full((4, 4, 3), 0.5, dtype=np.float32)
MASK = np.eye(4, dtype=np.float32)
PROBS_1 = np.array([[0.1, 0.5, 0.51, 0.9]] * 4, dtype=np.float32)
PROBS_2 = PROBS_1.T.copy()


def test_a_row_has_six_panels_in_order() -> None:
    panels = six_panel_row(IMAGE, MASK, PROBS_1, PROBS_2)
    assert len(panels) == 6, f"a row has {len(panels)} panels; expected 6"
    names = ["the image", "the true mask", "model 1's soft mask", None, "model 2's soft mask"]
    for number, (panel, wanted, name) in enumerate(
            zip(panels, [IMAGE, MASK, PROBS_1, None, PROBS_2], names, strict=False), 1):
        if wanted is not None:
            assert np.array_equal(np.asarray(panel), wanted), \
                f"panel {number} should be {name}, unchanged"


def test_the_thresholded_panels_are_probs_above_one_half() -> None:
    panels = six_panel_row(IMAGE, MASK, PROBS_1, PROBS_2)
    for number, probs in ((4, PROBS_1), (6, PROBS_2)):
        panel = np.asarray(panels[number - 1])
        wanted = probs > 0.5
        assert panel.shape == wanted.shape, (
            f"panel {number} has shape {panel.shape}; expected {wanted.shape}")
        wrong = np.argwhere(panel.astype(bool) != wanted)
        assert not len(wrong), (
            f"panel {number} is wrong at pixel {tuple(wrong[0])} (probability "
            f"{probs[tuple(wrong[0])]:g}): a pixel is lesion when its probability is > 0.5, so "
            "exactly 0.5 is background")
