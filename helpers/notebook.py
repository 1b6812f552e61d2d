"""The glue the notebooks call: data preparation, training a model, saving figures and tables.

Kept here (and tested) so that each notebook reads as a short story.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from helpers.atomic import write_text
from helpers.dataset import Splits, load_isic2016
from helpers.model import MobileNetV2UNet, parameter_summary
from helpers.presets import SYNTHETIC_ROOT, load_preset, resolve_path
from helpers.synthetic import write_synthetic_isic2016
from helpers.training import TrainConfig, build_model, fit, load_checkpoint

#: Names of the history columns in the reports' epoch tables.
REPORT_COLUMNS = {"epoch": "Epoch", "train_loss": "Training Loss", "val_loss": "Validation Loss",
                  "val_iou": "Validation IoU", "val_dice": "Validation Dice score"}


def preset_overrides() -> dict:
    """Parameters of the preset named by $LESIONKIT_PRESET (tests run notebooks this way)."""
    name = os.environ.get("LESIONKIT_PRESET")
    return load_preset(name) if name else {}


def prepare_data(data_root: str, image_size: int, validation: str, val_fraction: float,
                 seed: int, max_images: int | None = None, keep_ids: tuple[str, ...] = ()
                 ) -> Splits:
    """Load the splits; the SYNTHETIC demo set is generated on first use."""
    root = resolve_path(data_root)
    if root == SYNTHETIC_ROOT:
        write_synthetic_isic2016(root, n_train=80, n_test=30)
    return load_isic2016(root, image_size, validation=validation, val_fraction=val_fraction,
                         seed=seed, max_images=max_images, keep_ids=tuple(keep_ids))


def describe_data(splits: Splits, data_root: str) -> str:
    """One line that names the data honestly; it goes into every title."""
    if splits.train.synthetic:
        return "SYNTHETIC lesions (not dermoscopy)"
    root = resolve_path(data_root)
    label = "ISIC 2016 Part 1"
    source = root / "SOURCE.txt"
    if source.exists() and "RECONSTRUCTION" in source.read_text()[:300]:
        official = {s: len((root / f"ids_{s}.txt").read_text().split())
                    for s in ("train", "test")}
        found = {"train": len(splits.train) + (len(splits.val) if splits.validation ==
                                                "holdout" else 0), "test": len(splits.test)}
        label += (" (rebuilt from 512x512 centre crops of ISIC 2018; "
                  f"{found['train']}/{official['train']} train, "
                  f"{found['test']}/{official['test']} test)")
    return label


class Outputs:
    """Where a notebook writes: figures as PNG, tables as CSV and Markdown, training runs."""

    def __init__(self, output_dir: str) -> None:
        self.root = resolve_path(output_dir)
        self.figures = self.root / "figures"
        self.tables = self.root / "tables"
        self.runs = self.root / "runs"
        plt.rcParams["figure.dpi"] = 72  # inline copies stay small; the PNG files get dpi 110
        for folder in (self.figures, self.tables, self.runs):
            folder.mkdir(parents=True, exist_ok=True)

    def figure(self, fig: Figure, name: str) -> Path:
        path = self.figures / f"{name}.png"
        tmp = path.with_name(f".{path.stem}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
        return path

    def table(self, frame: pd.DataFrame, name: str, index: bool = False,
              floatfmt: str = ".4f") -> Path:
        path = self.tables / f"{name}.csv"
        formats = ["g" if pd.api.types.is_integer_dtype(frame[c]) else floatfmt
                   for c in frame.columns]
        markdown = frame.to_markdown(index=index, floatfmt=(["g"] if index else []) + formats)
        write_text(path, frame.to_csv(index=index))
        write_text(path.with_suffix(".md"), markdown + "\n")
        return path


def model_config(which: int, params: dict) -> TrainConfig:
    """TrainConfig for model 1 (frozen encoder) or model 2 (fine-tuned) from notebook params."""
    frozen = which == 1
    return TrainConfig(
        epochs=params["epochs"], batch_size=params["batch_size"], freeze_encoder=frozen,
        encoder_lr=0.0 if frozen else params["model2_encoder_lr"],
        decoder_lr=params["model1_decoder_lr"] if frozen else params["model2_decoder_lr"],
        loss=params["loss"], seed=params["seed"], augment=params["augment"],
        device=params["device"])


def train(which: int, splits: Splits, params: dict, outputs: Outputs
          ) -> tuple[MobileNetV2UNet, pd.DataFrame]:
    """Build, describe and train model ``which``; resumes a run already in the output folder."""
    config = model_config(which, params)
    model = build_model(config)
    print(parameter_summary(model))
    history = fit(model, splits.train, splits.val, config, outputs.runs / f"model{which}",
                  resume=True)
    return model, history


def load_trained(which: int, params: dict, outputs: Outputs, validation: str
                 ) -> tuple[MobileNetV2UNet, TrainConfig, str]:
    """The model to evaluate on the test set: the best validation epoch with a held-out
    validation set, else (test set used for validation) the last epoch, which was not
    selected by looking at the test scores."""
    config = model_config(which, params)
    model = build_model(config)
    name = "best.pt" if validation == "holdout" else "last.pt"
    state = load_checkpoint(outputs.runs / f"model{which}" / name, model)
    return model.eval(), config, f"{name[:-3]} epoch {state['epoch']}"


def epoch_table(history: pd.DataFrame) -> pd.DataFrame:
    """The reports' epoch rows (1, 10, 20, ... and the last) with the reports' column names."""
    last = int(history["epoch"].max())
    wanted = sorted({1, last, *range(10, last + 1, 10)})
    rows = history[history["epoch"].isin(wanted)].astype({"epoch": int})
    return rows[list(REPORT_COLUMNS)].rename(columns=REPORT_COLUMNS).reset_index(drop=True)


#: The parameters every notebook takes (its cell tagged ``parameters``).
PARAMETER_NAMES = ("title", "data_root", "image_size", "validation", "val_fraction",
                   "max_images", "seed", "epochs", "batch_size", "loss", "augment",
                   "model1_decoder_lr", "model2_encoder_lr", "model2_decoder_lr", "device",
                   "sample_ids", "n_random_samples", "output_dir", "preset")


def collect_parameters(namespace: dict) -> dict:
    """The notebook's parameters as a dict, after applying $LESIONKIT_PRESET if it is set.

    The override is written back into ``namespace`` (the notebook's globals) so that the
    variables and the dict agree.
    """
    namespace.update(preset_overrides())
    missing = [name for name in PARAMETER_NAMES if name not in namespace]
    if missing:
        raise NameError(f"parameters cell lacks {missing}")
    return {name: namespace[name] for name in PARAMETER_NAMES}
