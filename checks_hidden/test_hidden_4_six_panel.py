"""Hidden checks of exercise 4 (instructor only): each model at its own threshold, and the
figure's panels and titles."""

from __future__ import annotations

import numpy as np

from helpers.data import SegmentationSet
from helpers.plots import six_panel, six_panel_row


def test_each_model_is_thresholded_at_its_own_threshold() -> None:
    probs = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    image, mask = np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.float32)
    panels = six_panel_row(image, mask, probs, probs, (0.3, 0.7))
    assert np.array_equal(np.asarray(panels[3]).astype(bool), probs > 0.3)
    assert np.array_equal(np.asarray(panels[5]).astype(bool), probs > 0.7)


def test_the_figure_shows_the_thresholded_masks() -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((2, 8, 8, 3)) * 255).astype(np.uint8)
    masks = (rng.random((2, 8, 8)) > 0.5).astype(np.uint8)
    data = SegmentationSet(ids=["a", "b"], images=images, masks=masks,
                           original_sizes=np.array([[8, 8], [8, 8]]))
    probs = rng.random((2, 8, 8)).astype(np.float32)
    figure = six_panel(data, [0, 1], probs, probs, "title")
    axes = figure.axes
    assert len(axes) == 12
    assert axes[3].get_title() == "model 1 > 0.5"
    shown = np.asarray(axes[9].images[0].get_array())
    assert np.array_equal(shown.astype(bool), probs[1] > 0.5)
