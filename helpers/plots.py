"""Figures for the notebooks. Each function returns a matplotlib Figure and shows nothing,
except the interactive explorer, which returns its widget."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image

from helpers.data import Pair, SegmentationSet, load_pair, read_image, read_mask
from helpers.metrics import per_image_scores


def _off(ax: plt.Axes, title: str = "") -> None:
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def sample_grid(data: SegmentationSet, indices: list[int], title: str, columns: int = 4,
                probs: np.ndarray | None = None, threshold: float = 0.5,
                labels: list[str] | None = None) -> Figure:
    """Images with their lesion outline drawn in yellow, and with ``probs`` the predicted
    outline at ``threshold`` in cyan; each titled with its id or its entry of ``labels``."""
    rows = max(1, -(-len(indices) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        _off(ax)
    for number, (ax, index) in enumerate(zip(axes.flat, indices, strict=False)):
        ax.imshow(data.images[index])
        ax.contour(data.masks[index], levels=[0.5], colors="yellow", linewidths=1.2)
        if probs is not None and (probs[index] > threshold).any():
            ax.contour(probs[index], levels=[threshold], colors="cyan", linewidths=1.2)
        _off(ax, labels[number] if labels else data.ids[index])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def resize_effect(data: SegmentationSet, index: int, title: str) -> Figure:
    """One original image and mask next to what the network sees after resizing."""
    image = read_image(data.image_paths[index])
    mask = read_mask(data.mask_paths[index])
    pair = Pair(data.ids[index], data.image_paths[index], data.mask_paths[index])
    small_image, small_mask, _ = load_pair(pair, data.image_size)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    size = data.image_size
    panels = [(image, f"original {image.width}x{image.height}"), (mask, "original mask"),
              (small_image, f"resized {size}x{size}"), (small_mask, "resized mask (binary)")]
    for ax, (picture, label) in zip(axes, panels, strict=True):
        ax.imshow(np.asarray(picture) if isinstance(picture, Image.Image) else picture,
                  cmap="gray" if np.ndim(picture) == 2 else None)
        _off(ax, label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def distributions(sets: dict[str, SegmentationSet], title: str) -> Figure:
    """Lesion coverage (mask area fraction) per split, and the original image sizes."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, data in sets.items():
        left.hist(data.coverage(), bins=25, range=(0, 1), alpha=0.6, label=name)
        right.scatter(data.original_sizes[:, 1], data.original_sizes[:, 0], s=10, alpha=0.5,
                      label=name)
    left.set(xlabel="lesion area / image area", ylabel="images", title="Lesion coverage")
    right.set(xlabel="original width (px)", ylabel="original height (px)",
              title="Original image sizes")
    left.legend()
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, title: str) -> Figure:
    """Loss curves (train, validation) and validation IoU/Dice per epoch."""
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    loss_ax.plot(history["epoch"], history["train_loss"], label="training loss")
    loss_ax.plot(history["epoch"], history["val_loss"], label="validation loss")
    loss_ax.set(xlabel="epoch", ylabel="loss (the preset's: BCE, or BCE + Dice)", title="Loss")
    for column, label in (("val_iou", "IoU"), ("val_dice", "Dice"),
                          ("val_soft_iou", "soft IoU"), ("val_soft_dice", "soft Dice")):
        score_ax.plot(history["epoch"], history[column], label=label,
                      linestyle="--" if "soft" in column else "-")
    score_ax.set(xlabel="epoch", ylabel="per-image mean", title="Validation scores", ylim=(0, 1))
    loss_ax.legend()
    score_ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_curves(histories: dict[str, pd.DataFrame], column: str, ylabel: str, title: str
                   ) -> Figure:
    """One history column of several runs on one set of axes."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, history in histories.items():
        ax.plot(history["epoch"], history[column], label=name)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def six_panel_row(image: np.ndarray, mask: np.ndarray, probs_1: np.ndarray,
                  probs_2: np.ndarray, thresholds: tuple[float, float] = (0.5, 0.5)
                  ) -> list[np.ndarray]:
    """One row of :func:`six_panel`: the image, the true mask, model 1's soft mask and its
    mask thresholded (``probs > threshold``, as the scores count a pixel), then model 2's."""
    # BEGIN SOLUTION exercise 4: the thresholded 6-panel figure at 0.5
    # HINT: six arrays: image, mask, probs_1, probs_1 > thresholds[0], probs_2, probs_2 > ...[1]
    threshold_1, threshold_2 = thresholds
    return [image, mask, probs_1, probs_1 > threshold_1, probs_2, probs_2 > threshold_2]
    # END SOLUTION


def six_panel(data: SegmentationSet, indices: list[int], probs_1: np.ndarray,
              probs_2: np.ndarray, title: str, thresholds: tuple[float, float] = (0.5, 0.5)
              ) -> Figure:
    """Per row: image, true mask, model 1 soft and thresholded, model 2 soft and thresholded
    (each model at its own threshold, the one its scores use)."""
    if not indices:
        raise ValueError("six_panel needs at least one image to show")
    threshold_1, threshold_2 = thresholds
    headers = ["image", "true mask", "model 1 (soft)", f"model 1 > {threshold_1:g}",
               "model 2 (soft)", f"model 2 > {threshold_2:g}"]
    fig, axes = plt.subplots(len(indices), 6, figsize=(12, 2.15 * len(indices)), squeeze=False)
    for number, (row, index) in enumerate(zip(axes, indices, strict=True)):
        panels = six_panel_row(data.images[index], data.masks[index], probs_1[index],
                               probs_2[index], thresholds)
        for column, (ax, panel) in enumerate(zip(row, panels, strict=True)):
            ax.imshow(panel, cmap=None if column == 0 else "gray", vmin=0, vmax=1)
            _off(ax, headers[column] if number == 0 else "")
        row[0].set_axis_on()
        row[0].set_xticks([])
        row[0].set_yticks([])
        row[0].set_ylabel(data.ids[index], fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def threshold_panel(data: SegmentationSet, index: int, probs: dict[str, np.ndarray],
                    threshold: float) -> Figure:
    """One test image: the image, its true mask, and each model's mask at ``threshold`` with
    that image's Dice in the title."""
    truth = torch.as_tensor(data.masks[index][None])
    fig, axes = plt.subplots(1, 2 + len(probs), figsize=(3 * (2 + len(probs)), 3.2))
    axes[0].imshow(data.images[index])
    _off(axes[0], data.ids[index])
    axes[1].imshow(data.masks[index], cmap="gray", vmin=0, vmax=1)
    _off(axes[1], "true mask")
    for ax, (name, prob) in zip(axes[2:], probs.items(), strict=True):
        dice = per_image_scores(torch.as_tensor(prob[index][None]), truth, threshold)["dice"]
        ax.imshow(prob[index] > threshold, cmap="gray", vmin=0, vmax=1)
        _off(ax, f"{name} > {threshold:.2f}: Dice {dice.item():.3f}")
    fig.tight_layout()
    return fig


def mask_explorer(data: SegmentationSet, probs: dict[str, np.ndarray]) -> object:
    """An interactive explorer (ipywidgets): choose a test image and a threshold, see each
    model's mask and per-image Dice update. In a saved or exported notebook widgets are inert,
    so it is shown once at the first image and 0.5 there."""
    def show(sample_id: str, threshold: float) -> None:
        threshold_panel(data, data.index_of(sample_id), probs, threshold)
        plt.show()

    return widgets.interactive(
        show, sample_id=widgets.Dropdown(options=data.ids, description="image"),
        threshold=widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05,
                                      description="threshold"))


def worst_gallery(data: SegmentationSet, probs: np.ndarray, per_image: pd.DataFrame,
                  title: str, count: int = 10, threshold: float = 0.5) -> Figure:
    """The ``count`` images with the lowest official Jaccard: each image with the true
    outline (yellow) and the predicted one (cyan), titled with its id and Jaccard."""
    worst = per_image.sort_values("jaccard").index[:count]
    labels = [f"{i}\nJaccard {per_image.loc[i, 'jaccard']:.3f}" for i in worst]
    return sample_grid(data, [data.index_of(i) for i in worst], title, columns=5, probs=probs,
                       threshold=threshold, labels=labels)
