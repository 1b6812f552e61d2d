"""The scoring record: how notebook 04 scored a run's model, so that predicting and
evaluating later use the same checkpoint, threshold and test-time flips.

``scoring.json`` is tied to the scored checkpoint file's SHA-256: a run trained further, or
trained again, no longer matches it, and the record is then not used (the reason is said).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from helpers.config import TrainConfig, problem_with
from helpers.errors import RunFolderError
from helpers.metrics import check_threshold
from helpers.model import MobileNetV2UNet
from helpers.runs.checkpoints import load_trained, read_run_settings
from helpers.runs.folder import SCORING, read_checkpoint, read_json
from helpers.system.atomic import write_text


def checkpoint_digest(path: Path) -> str:
    """The SHA-256 hex digest of a checkpoint file: which weights it holds."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_scoring(folder: Path, checkpoint: str, epoch: int, threshold: float,
                  flips: bool) -> None:
    """Record in ``folder`` how the ``checkpoint`` of ``epoch`` was scored, tied to the
    checkpoint file's bytes. When the file holds another epoch (a crash left best.pt behind
    last.pt, and the scored weights came from last.pt), nothing is recorded: with a warning,
    and an older record is removed, so no later command applies it to other weights."""
    path = folder / f"{checkpoint}.pt"
    held = read_checkpoint(path, needs=("epoch",))["epoch"]
    if held != epoch:
        (folder / SCORING).unlink(missing_ok=True)
        warnings.warn(f"{path} holds epoch {held}, not the scored epoch {epoch}, so how it was "
                      f"scored is not recorded in {folder / SCORING}. Resume the run (fit "
                      "with resume=True) to repair it, then score it again.", stacklevel=2)
        return
    scoring = {"checkpoint": checkpoint, "epoch": epoch,
               "checkpoint_sha256": checkpoint_digest(path),
               "threshold": float(threshold), "test_time_flips": bool(flips)}
    write_text(folder / SCORING, json.dumps(scoring, indent=2) + "\n")


def read_scoring(folder: Path) -> dict | None:
    """The folder's ``scoring.json`` (checked), or None when there is none."""
    path = folder / SCORING
    if not path.exists():
        return None
    again = "Delete it, or run notebook 04 again to write it anew."
    scoring = read_json(path, again)
    types = {"checkpoint": str, "epoch": int, "checkpoint_sha256": str,
             "threshold": (int, float), "test_time_flips": bool}
    # (a JSON true is a bool, and Python's bool is an int: only test_time_flips may be one)
    wrong = [key for key, kind in types.items() if not isinstance(scoring, dict)
             or not isinstance(scoring.get(key), kind)
             or (kind is not bool and isinstance(scoring.get(key), bool))]
    if wrong or scoring["checkpoint"] not in ("last", "best") \
            or problem_with("epochs", scoring["epoch"]) or not 0 < scoring["threshold"] < 1:
        raise RunFolderError(f"{path} is not a scoring record the kit wrote (check "
                             f"{', '.join(wrong) or 'checkpoint, epoch and threshold'}). {again}")
    return scoring


@dataclass(frozen=True)
class Scoring:
    """How a trained model's probabilities become masks, and where that choice came from."""

    checkpoint: str
    epoch: int
    threshold: float
    flips: bool
    source: str  # for the user: what was given, and which record or defaults gave the rest

    def describe(self) -> str:
        return (f"{self.checkpoint} checkpoint (epoch {self.epoch}), threshold "
                f"{self.threshold:g}, {'test-time flips' if self.flips else 'no flips'} "
                f"({self.source})")


def _usable_record(run_dir: Path, checkpoint: str | None) -> tuple[dict | None, str]:
    """The run's ``scoring.json`` if it is for ``checkpoint`` (None: any) and that file still
    holds the weights it was made for; else None and why not."""
    record = read_scoring(run_dir)
    if record is None:
        return None, f"no {SCORING}"
    if checkpoint not in (None, record["checkpoint"]):
        return None, f"{SCORING} is for the {record['checkpoint']} checkpoint"
    path = run_dir / f"{record['checkpoint']}.pt"
    if not path.exists() or checkpoint_digest(path) != record["checkpoint_sha256"]:
        return None, (f"{SCORING} was written for other weights, the "
                      f"{record['checkpoint']} checkpoint of epoch {record['epoch']}")
    return record, ""


def load_scored_run(run_dir: str | Path, checkpoint: str | None = None,
                    threshold: float | None = None, flips: bool | None = None,
                    device: str | None = None
                    ) -> tuple[MobileNetV2UNet, TrainConfig, int, Scoring]:
    """:func:`~helpers.runs.checkpoints.load_run`, and how to score the model: what is
    given, else what notebook 04 scored these very weights with (the run's ``scoring.json``),
    else the last checkpoint at threshold 0.5 without flips.

    The record counts only while its checkpoint file holds the weights it was made for: a run
    trained further, or trained again, goes back to the defaults, and ``source`` says why.
    """
    run_dir = Path(run_dir)
    given = [name for name, value in (("checkpoint", checkpoint), ("threshold", threshold),
                                      ("flips", flips)) if value is not None]
    record, why_not = (None, "") if len(given) == 3 else _usable_record(run_dir, checkpoint)
    checkpoint = checkpoint or (record["checkpoint"] if record else "last")
    config, size = read_run_settings(run_dir, device)
    model, epoch = load_trained(config, run_dir, checkpoint)
    if record is not None and epoch != record["epoch"]:  # best.pt left behind by a crash
        record, why_not = None, f"{SCORING} is for epoch {record['epoch']}"
    if threshold is None:
        threshold = record["threshold"] if record else 0.5
    if flips is None:
        flips = record["test_time_flips"] if record else False
    check_threshold(threshold)
    rest = (f"as notebook 04 scored it: {SCORING}" if record
            else f"defaults: {why_not}")
    source = ("given" if len(given) == 3 else
              f"{' and '.join(given)} given, the rest {rest}" if given else rest)
    return model, config, size, Scoring(checkpoint, epoch, float(threshold), flips, source)
