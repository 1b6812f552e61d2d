"""Training on the real ISIC 2016 data (skipped unless $LESIONKIT_ISIC2016 is set)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.config import TrainConfig
from helpers.evaluate import predict
from helpers.isic2016 import load_isic2016
from helpers.metrics import score_table
from helpers.model import build_model
from helpers.train import fit


def test_three_frozen_epochs_reach_dice_075(real_root: Path, tmp_path: Path) -> None:
    """Report A's model 1 settings (batch 45, decoder lr 1e-2), 3 epochs at 128×128."""
    data = load_isic2016(real_root, size=128, seed=0)
    config = TrainConfig(epochs=3, batch_size=45, freeze_encoder=True, encoder_lr=0.0,
                         decoder_lr=1e-2, seed=0)
    model = build_model(config)
    fit(model, data.train, data.val, config, tmp_path, progress=False)
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == 3
    test_dice = score_table(predict(model, data.test, config), data.test.masks)["dice"].mean()
    print(f"thresholded per-image test Dice after 3 frozen epochs: {test_dice:.4f}")
    assert test_dice >= 0.75
