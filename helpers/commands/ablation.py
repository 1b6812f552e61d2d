"""What each ingredient of a recipe is worth: an ablation on held-out validation images.

    python -m helpers ablation --preset best [--epochs 20] [--image-size 128]

Starting from report A's model 2 (fine-tuned encoder, plain BCE, no augmentation, constant
learning rates, transposed-convolution decoder), each row adds one ingredient of the preset's
fine-tuned model and trains again, from the same seed, on the same training images; a row
then trains at the preset's own image size, and the evaluation-only ingredients (test-time
flips, a threshold chosen on validation) are added to that last model. Every row is
scored on the *validation* images (never the test set) by the official ISIC scorer at the
images' original resolution, and on zoomed-out copies of them (:mod:`helpers.zoomout`).

The rows are cumulative, so each change is measured on top of the ones before it. Runs are
resumable (``<output>/runs/ablation/<row>``); the table goes to
``<output>/tables/ablation.csv`` and ``.md``. Only the preset's ``validation: holdout``
makes sense here: ablating on the test set would choose the recipe on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pandas as pd

from helpers.commands.cli import run_command
from helpers.config import TrainConfig, load_config
from helpers.data import SegmentationSet
from helpers.errors import ConfigError
from helpers.evaluate import choose_threshold, official_isic_scores, predict
from helpers.isic2016 import load_splits
from helpers.metrics import score_table
from helpers.model import MobileNetV2UNet, build_model
from helpers.outputs import Outputs
from helpers.system.writable import output_folder
from helpers.train import fit
from helpers.zoomout import zoom_out_set

#: Report A's model 2 for each ingredient the rows add, in the order they are added.
BASELINE = {"augment": False, "scale_augment": False, "loss": "bce", "schedule": "constant",
            "decoder": "transposed"}
LABELS = {"augment": "+ flips, 90° turns, colour jitter",
          "scale_augment": "+ zoom-out and zoom-in",
          "loss": "+ BCE + Dice loss",
          "schedule": "+ cosine learning-rate schedule",
          "decoder": "+ upsample + conv decoder"}
ZOOM_FACTOR = 0.6


def ablation_rows(target: TrainConfig) -> list[tuple[str, str, TrainConfig]]:
    """(row name, label, training settings) of the rows that train, baseline first: one row
    per ingredient where ``target`` differs from report A's model 2."""
    current = dataclasses.replace(target, **BASELINE)
    rows = [("baseline", "report A's model 2 (validation held out)", current)]
    for key, value in BASELINE.items():
        if getattr(target, key) != value:
            current = dataclasses.replace(current, **{key: getattr(target, key)})
            rows.append((key, LABELS[key], current))
    return rows


def run_ablation(preset: str, epochs: int, image_size: int, data_root: str | None = None,
                 output_dir: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Train and score every row (see the module docstring); return and save the table."""
    config = load_config(preset, data_root=data_root, output_dir=output_dir)
    if config.validation != "holdout":
        raise ConfigError(f"preset {preset!r}: an ablation needs validation: holdout")
    output_folder(config.output_dir)
    target = dataclasses.replace(config.fine_tuned, epochs=epochs)
    sizes = [image_size] + ([config.image_size] if config.image_size != image_size else [])
    table = []
    for size in sizes:
        sized = load_config(preset, data_root=data_root, output_dir=output_dir,
                            overrides={"image_size": size})
        splits = load_splits(sized, progress=progress)
        zoomed = zoom_out_set(splits.val, ZOOM_FACTOR)
        rows = ablation_rows(target) if size == image_size else [
            ("size", f"+ {size}x{size} input (the preset's)", target)]
        for name, label, settings in rows:
            run_dir = config.output_dir / "runs" / "ablation" / f"{name}_{size}"
            if progress:
                print(f"{label}: {run_dir.name}", flush=True)
            model = build_model(settings)
            fit(model, splits.train, splits.val, settings, run_dir, resume=True,
                progress=progress)
            table.append(_score(label, model.eval(), settings, splits.val, zoomed, size,
                                flips=False))
    # The evaluation-only ingredients, on the last model trained (the preset's recipe)
    if config.test_time_flips:
        table.append(_score("+ test-time flips", model, settings, splits.val, zoomed, size,
                            flips=True))
    if config.threshold == "validation":
        table.append(_score("+ threshold chosen on validation", model, settings, splits.val,
                            zoomed, size, flips=config.test_time_flips, tune=True))
    frame = pd.DataFrame(table)
    frame.insert(2, "change", frame["val_jaccard"].diff())
    Outputs(config.output_dir).table(frame, "ablation")
    return frame


def _score(label: str, model: MobileNetV2UNet, settings: TrainConfig, val: SegmentationSet,
           zoomed: SegmentationSet, size: int, flips: bool, tune: bool = False) -> dict:
    """One row: official Jaccard and Dice on the validation images at their original size,
    and the Jaccard on their zoomed-out copies ``zoomed`` (at the training size)."""
    probs = predict(model, val, settings, flips=flips)
    threshold = choose_threshold(probs, val.masks)[0] if tune else 0.5
    _, macro = official_isic_scores(probs, val, threshold)
    zoomed_probs = predict(model, zoomed, settings, flips=flips)
    zoomed_iou = score_table(zoomed_probs, zoomed.masks, threshold=threshold)["iou"].mean()
    return {"ingredient": label, "val_jaccard": macro["jaccard"], "val_dice": macro["dice"],
            f"zoomed_x{ZOOM_FACTOR}_jaccard": zoomed_iou, "threshold": threshold,
            "image_size": size, "epochs": settings.epochs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="best")
    parser.add_argument("--epochs", type=int, default=20, help="per row (default 20)")
    parser.add_argument("--image-size", type=int, default=128,
                        help="of the ingredient rows; the last row uses the preset's")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--output-dir", default=None, help="default: reports/<preset>")
    return run_command(parser, ablate, argv)


def ablate(args: argparse.Namespace) -> int:
    frame = run_ablation(args.preset, args.epochs, args.image_size, args.data_root,
                         args.output_dir)
    print(frame.to_markdown(index=False, floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
