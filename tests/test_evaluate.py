"""Test-set evaluation: predictions, official scoring that agrees with the kit's own metrics
and loader, and the paired comparison of two models."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.commands.evaluate import main
from helpers.config import TrainConfig
from helpers.decode import load_split
from helpers.evaluate import (
    choose_threshold,
    official_isic_scores,
    paired_comparison,
    predict,
    upsample,
)
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.metrics import score_table
from helpers.model import build_model
from helpers.train import fit


def test_paired_comparison_on_known_differences() -> None:
    first = pd.Series([0.5, 0.6, 0.7, 0.8, 0.9])
    second = pd.Series([0.6, 0.6, 0.9, 0.7, 1.0])  # differences +0.1, 0, +0.2, -0.1, +0.1
    result = paired_comparison(first, second, n_bootstrap=2000, seed=0)
    assert (result["second_better"], result["first_better"], result["ties"]) == (3, 1, 1)
    assert result["mean_difference"] == pytest.approx(0.06)
    assert -0.1 <= result["ci95_low"] <= 0.06 <= result["ci95_high"] <= 0.2
    assert 0 < result["wilcoxon_p"] <= 1 and 0 < result["paired_t_p"] <= 1


def test_paired_comparison_pairs_images_by_id_whatever_their_order() -> None:
    first = pd.Series([0.5, 0.6, 0.7, 0.8, 0.9], index=list("abcde"))
    second = pd.Series([0.6, 0.6, 0.9, 0.7, 1.0], index=list("abcde"))
    shuffled = second.iloc[[3, 0, 4, 1, 2]]  # e.g. a table sorted by score
    assert paired_comparison(first, shuffled) == paired_comparison(first, second)


def test_paired_comparison_refuses_tables_of_other_images() -> None:
    first = pd.Series([0.5, 0.6], index=["ISIC_1", "ISIC_2"])
    with pytest.raises(ValueError, match="different images .*ISIC_3"):
        paired_comparison(first, pd.Series([0.5, 0.6], index=["ISIC_1", "ISIC_3"]))


def test_a_clearly_better_model_gets_a_small_p_and_an_interval_above_zero() -> None:
    rng = np.random.default_rng(0)
    first = pd.Series(rng.uniform(0.6, 0.8, 200))
    result = paired_comparison(first, first + 0.05 + rng.normal(0, 0.01, 200))
    assert result["ci95_low"] > 0.04 and result["wilcoxon_p"] < 1e-10


def test_identical_models_tie_everywhere() -> None:
    same = pd.Series([0.7, 0.8, 0.9])
    result = paired_comparison(same, same)
    assert result["ties"] == 3 and result["mean_difference"] == 0 and result["wilcoxon_p"] == 1


def test_official_scores_equal_the_kits_metrics_at_identity_size(synthetic_root: Path) -> None:
    # The synthetic images are 192x160; at that size upsampling changes nothing, so the
    # official per-image scores must equal the kit's own on the same masks.
    data = load_split(isic2016_split(synthetic_root, "test"), size=64, progress=False)
    truth = np.stack([np.asarray(Image.open(p)) > 127 for p in data.mask_paths])
    rng = np.random.default_rng(0)
    probs_full = np.clip(truth + rng.normal(0, 0.4, truth.shape), 0, 1).astype(np.float32)
    assert np.array_equal(upsample(probs_full[0], 160, 192), probs_full[0])
    official, macro = official_isic_scores(probs_full, data)
    ours = score_table(probs_full, truth.astype(np.uint8), data.ids)
    for name, column in (("jaccard", "iou"), ("dice", "dice"), ("accuracy", "accuracy"),
                         ("sensitivity", "sensitivity"), ("specificity", "specificity")):
        np.testing.assert_allclose(official[name], ours[column], atol=1e-6)
    assert macro["dice"] == pytest.approx(official["dice"].mean())


@pytest.mark.parametrize("kind", ["labels_0_1", "sixteen_bit"])
def test_official_scoring_uses_the_truth_as_the_loader_reads_it(synthetic_root: Path,
                                                                tmp_path: Path,
                                                                kind: str) -> None:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    layout = isic2016_split(root, "test")
    for path in sorted(layout.masks_dir.iterdir()):
        lesion = np.asarray(Image.open(path)) > 127
        if kind == "labels_0_1":
            Image.fromarray(lesion.astype(np.uint8)).save(path)
        else:
            Image.fromarray(lesion.astype(np.uint16) * 65535).save(path)
    data = load_split(layout, size=64, progress=False)
    perfect = np.stack([np.asarray(Image.open(p)) > 0 for p in data.mask_paths]).astype(
        np.float32)
    official, _ = official_isic_scores(perfect, data)
    assert (official["dice"] == 1).all() and (official["jaccard"] == 1).all()


def test_predict_gives_one_probability_map_per_image(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), size=64, progress=False)
    config = TrainConfig(epochs=1, batch_size=4, freeze_encoder=True, decoder_lr=1e-2,
                         eval_batch_size=3)
    probs = predict(build_model(config, pretrained=False), data, config)
    assert probs.shape == (8, 64, 64) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()


def test_test_time_flips_average_the_four_flipped_predictions(synthetic_root: Path) -> None:
    data = load_split(isic2016_split(synthetic_root, "test"), 64)
    config = TrainConfig(epochs=1, batch_size=4, freeze_encoder=True, decoder_lr=1e-2)
    model = build_model(config, pretrained=False)
    plain = predict(model, data, config)
    flipped = predict(model, data, config, flips=True)
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2)
    manual = []
    for dims in ((), (-1,), (-2,), (-2, -1)):
        moved = images.flip(dims) if dims else images
        flipped_data = dataclasses.replace(
            data, images=np.ascontiguousarray(moved.permute(0, 2, 3, 1).numpy()))
        probs = torch.from_numpy(predict(model, flipped_data, config))
        manual.append(probs.flip(dims) if dims else probs)  # (N, H, W): same last two axes
    np.testing.assert_allclose(flipped, torch.stack(manual).mean(0).numpy(), atol=1e-5)
    assert not np.allclose(plain, flipped)


def test_threshold_is_chosen_where_validation_jaccard_is_highest() -> None:
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[:, 2:6, 2:6] = 1
    probs = np.where(masks == 1, 0.35, 0.1).astype(np.float32)  # lesion scored only 0.35
    threshold, table = choose_threshold(probs, masks)
    assert threshold < 0.35 and table[threshold] == 1.0
    assert table[0.5] == 0.0  # at 0.5 nothing is found


def test_evaluate_command_scores_a_folder_and_names_a_missing_mask(
        synthetic_root: Path, tmp_path: Path, capsys) -> None:
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
    fit(build_model(config), splits.train, splits.val, config, tmp_path / "run", progress=False)
    layout = isic2016_split(synthetic_root, "test")
    assert main(["--run", str(tmp_path / "run"), "--images", str(layout.images_dir),
                 "--masks", str(layout.masks_dir), "--out", str(tmp_path / "scores")]) == 0
    per_image = pd.read_csv(tmp_path / "scores" / "per_image.csv", index_col="id")
    assert len(per_image) == 8 and per_image["jaccard"].is_monotonic_increasing  # worst first
    summary = pd.read_csv(tmp_path / "scores" / "summary.csv", index_col=0)["value"]
    assert summary["jaccard"] == pytest.approx(per_image["jaccard"].mean())
    assert "jaccard" in capsys.readouterr().out

    masks = tmp_path / "masks"
    shutil.copytree(layout.masks_dir, masks)
    missing = sorted(masks.iterdir())[0]
    missing.unlink()
    assert main(["--run", str(tmp_path / "run"), "--images", str(layout.images_dir),
                 "--masks", str(masks)]) == 1
    assert missing.name.removesuffix("_Segmentation.png") in capsys.readouterr().err
