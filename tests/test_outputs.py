"""Figures and tables land in the output folder; the reports' epoch table shape."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from helpers.outputs import Outputs, epoch_table


def test_epoch_table_has_the_reports_rows() -> None:
    history = pd.DataFrame({"epoch": range(1, 26), "train_loss": 0.1, "val_loss": 0.2,
                            "val_iou": 0.5, "val_dice": 0.6})
    assert list(epoch_table(history)["Epoch"]) == [1, 10, 20, 25]
    assert list(epoch_table(history).columns) == [
        "Epoch", "Training Loss", "Validation Loss", "Validation IoU", "Validation Dice score"]


def test_tables_are_written_as_csv_and_markdown(tmp_path: Path) -> None:
    outputs = Outputs(tmp_path)
    frame = pd.DataFrame({"model": ["a", "b"], "epochs": [1, 2], "dice": [0.81234, 0.9]})
    path = outputs.table(frame, "t")
    assert pd.read_csv(path).equals(frame)
    markdown = (tmp_path / "tables" / "t.md").read_text()
    assert "0.8123" in markdown and "| a " in markdown


def test_figures_are_written_as_png(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = Outputs(tmp_path).figure(fig, "f")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.png"]
