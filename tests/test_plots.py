"""The notebooks' figures have the panels and titles the reports have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from helpers import plots
from helpers.decode import load_split
from helpers.isic2016 import isic2016_split


def test_six_panel_has_the_six_column_titles(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    probs = np.random.default_rng(0).random(data.masks.shape)
    fig = plots.six_panel(data, [0, 1], probs, probs, "title")
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["image", "true mask", "model 1 (soft)", "model 1 > 0.5",
                      "model 2 (soft)", "model 2 > 0.5"]
    assert [ax.get_ylabel() for ax in fig.axes[::6]] == data.ids[:2]


def test_six_panel_thresholds_each_model_at_its_own_threshold(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    probs = np.random.default_rng(0).random(data.masks.shape)
    fig = plots.six_panel(data, [0], probs, probs, "title", thresholds=(0.3, 0.7))
    assert [ax.get_title() for ax in fig.axes[:6]][3::2] == ["model 1 > 0.3", "model 2 > 0.7"]
    shown_1, shown_2 = (fig.axes[i].images[0].get_array() for i in (3, 5))
    assert np.array_equal(shown_1, probs[0] > 0.3) and np.array_equal(shown_2, probs[0] > 0.7)


def test_training_curves_show_losses_and_scores() -> None:
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.5, 0.4], "val_loss": [0.6, 0.5],
                            "val_iou": [0.5, 0.6], "val_dice": [0.6, 0.7],
                            "val_soft_iou": [0.4, 0.5], "val_soft_dice": [0.5, 0.6]})
    fig = plots.training_curves(history, "t")
    loss_ax, score_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(score_ax.lines) == 4


def test_sample_grid_outlines_each_image(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    fig = plots.sample_grid(data, [0, 1, 2], "t", columns=2)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == data.ids[:3]


def test_threshold_panel_shows_each_models_dice(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    probs = {"model 1": data.masks.astype(np.float32), "model 2": 1 - data.masks}
    fig = plots.threshold_panel(data, 0, probs, 0.5)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "model 1 > 0.50: Dice 1.000"
    assert titles[3] == "model 2 > 0.50: Dice 0.000"


def test_mask_explorer_builds_without_a_frontend(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    explorer = plots.mask_explorer(data, {"model 1": data.masks.astype(np.float32)})
    image, threshold = explorer.children[:2]
    assert list(image.options) == data.ids and threshold.value == 0.5
    threshold.value = 0.7  # moving the slider redraws without error
