"""Where a notebook writes: figures as PNG, tables as CSV and Markdown, under the run's
output folder, and the reports' table shapes (so the kit's tables sit next to theirs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from helpers.system.atomic import atomic_path, write_text

#: History columns as the reports name them in their epoch tables.
REPORT_COLUMNS = {"epoch": "Epoch", "train_loss": "Training Loss", "val_loss": "Validation Loss",
                  "val_iou": "Validation IoU", "val_dice": "Validation Dice score"}


class Outputs:
    """The figures and tables folders of one output folder (created on first use)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.root = Path(output_dir)
        self.figures = self.root / "figures"
        self.tables = self.root / "tables"
        plt.rcParams["figure.dpi"] = 72  # inline copies stay small; the PNG files get dpi 110
        for folder in (self.figures, self.tables):
            folder.mkdir(parents=True, exist_ok=True)

    def figure(self, fig: Figure, name: str) -> Path:
        """Save ``fig`` as ``figures/<name>.png``."""
        path = self.figures / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        return path

    def table(self, frame: pd.DataFrame, name: str, index: bool = False,
              floatfmt: str = ".4f") -> Path:
        """Save ``frame`` as ``tables/<name>.csv`` and ``tables/<name>.md``."""
        path = self.tables / f"{name}.csv"
        formats = ["g" if pd.api.types.is_integer_dtype(frame[c]) else floatfmt
                   for c in frame.columns]
        markdown = frame.to_markdown(index=index, floatfmt=(["g"] if index else []) + formats)
        write_text(path, frame.to_csv(index=index))
        write_text(path.with_suffix(".md"), markdown + "\n")
        return path


def epoch_table(history: pd.DataFrame) -> pd.DataFrame:
    """The reports' epoch rows (1, 10, 20, ... and the last) with the reports' column names."""
    last = int(history["epoch"].max())
    wanted = sorted({1, last, *range(10, last + 1, 10)})
    rows = history[history["epoch"].isin(wanted)].astype({"epoch": int})
    return rows[list(REPORT_COLUMNS)].rename(columns=REPORT_COLUMNS).reset_index(drop=True)
