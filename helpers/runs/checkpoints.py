"""Checkpoints of a run folder: writing them, loading them safely, resuming, and repairing
a ``best.pt`` that a crash left one epoch behind ``last.pt``.

``last.pt`` holds the model, the optimiser (and the float16 loss scaler), the epoch, the best
validation Dice so far and the history rows; ``best.pt`` holds the weights of the epoch with
the best validation Dice. Both are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from helpers.config import TrainConfig, problem_with
from helpers.data import SegmentationSet
from helpers.errors import RunFolderError, shown
from helpers.model import MobileNetV2UNet, build_model
from helpers.runs.folder import (
    BEST,
    CONFIG,
    DATA,
    HISTORY_COLUMNS,
    LAST,
    check_data,
    data_fingerprint,
    read_checkpoint,
    read_json,
    trusted_history,
)
from helpers.system.atomic import write_bytes


def save_checkpoint(obj: object, path: Path) -> None:
    """Write a checkpoint atomically: a crash leaves the old file or the new one, never half.

    It is serialised in memory first and then written as plain bytes: the same state gives
    the same bytes (torch names the archive inside after the file, and the temporary file's
    name is random), and a full disk is an ordinary ``OSError`` rather than torch's internal
    "enforce fail" text."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: str | Path, model: nn.Module) -> dict:
    """Load a checkpoint's weights into ``model`` (safely: ``weights_only=True``); a damaged
    file or one from another program stops with :class:`RunFolderError` naming it."""
    path = Path(path)
    state = read_checkpoint(path)
    _load_weights(model, state["model"], path)
    return state


def _load_weights(model: nn.Module, weights: dict, path: Path) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise RunFolderError(f"{path} does not fit this model: {str(error)[:300]}") from error


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """The per-epoch history of the finished epochs of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    state = read_checkpoint(run_dir / LAST)
    return pd.DataFrame(trusted_history(run_dir, state, HISTORY_COLUMNS),
                        columns=HISTORY_COLUMNS)


def load_trained(config: TrainConfig, run_dir: str | Path, checkpoint: str = "last",
                 data: tuple[SegmentationSet, SegmentationSet] | None = None
                 ) -> tuple[MobileNetV2UNet, int]:
    """The model saved in ``run_dir`` (``"last"`` or ``"best"`` epoch) in eval mode, and the
    epoch it comes from.

    With ``data`` (the training and validation sets) the run must be finished and must have
    been trained with ``config`` on that data; otherwise :class:`RunFolderError` says how it
    differs, so a notebook never scores new data or new settings with an old model.
    """
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', not {checkpoint!r}")
    run_dir = Path(run_dir)
    if data is not None:
        check_settings(config, run_dir, compare_epochs=True)
        check_data(run_dir, data_fingerprint(*data, pretrained=True))
        done = int(read_checkpoint(run_dir / LAST)["epoch"])
        if done < config.epochs:
            raise RunFolderError(f"The run in {run_dir} has finished {done} of its "
                                 f"{config.epochs} epochs: train it to the end first.")
    model = build_model(config)
    # a crash between last.pt and best.pt may have left best.pt behind: last.pt then holds
    # the best weights (read only: the folder may be read-only, or in use by a training)
    stand_in = best_behind_last(run_dir) if checkpoint == "best" else None
    if stand_in is not None:
        _load_weights(model, stand_in["model"], run_dir / LAST)
        return model.eval(), stand_in["epoch"]
    state = load_checkpoint(run_dir / f"{checkpoint}.pt", model)
    return model.eval(), int(state["epoch"])


def check_settings(config: TrainConfig, run_dir: Path, compare_epochs: bool) -> None:
    saved = read_json(run_dir / CONFIG)
    # A setting added after the run was made has its default value there.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    saved = {**defaults, **saved}
    changed = sorted(k for k, v in dataclasses.asdict(config).items()
                     if (compare_epochs or k != "epochs") and saved.get(k) != v)
    if changed:
        details = ", ".join(f"{k}: {shown(saved.get(k))} there, {getattr(config, k)!r} now"
                            for k in changed)
        raise RunFolderError(f"The run in {run_dir} was trained with other settings "
                             f"({details}). Use another output folder for a different "
                             "configuration.")


def load_run(run_dir: str | Path, checkpoint: str = "last", device: str | None = None
             ) -> tuple[MobileNetV2UNet, TrainConfig, int]:
    """A trained model from its run folder alone (for predicting on new images): the model in
    eval mode, its settings (``device`` replaced when given) and the image size it was trained
    at, from the folder's ``config.json`` and ``data.json``."""
    config, size = read_run_settings(run_dir, device)
    model, _ = load_trained(config, run_dir, checkpoint)
    return model, config, size


def read_run_settings(run_dir: str | Path, device: str | None = None
                      ) -> tuple[TrainConfig, int]:
    """A run folder's training settings (``device`` replaced when given) and the image size it
    was trained at."""
    run_dir = Path(run_dir)
    saved = read_json(run_dir / CONFIG)
    try:
        config = TrainConfig(**{**saved, **({"device": device} if device else {})})
    except (TypeError, ValueError) as error:
        raise RunFolderError(f"{run_dir / CONFIG} does not hold valid training settings "
                             f"({error}).") from error
    size = read_json(run_dir / DATA).get("image_size")
    if size is None:
        raise RunFolderError(f"{run_dir / DATA} does not say the image size the model was "
                             "trained at; train it again with this version of the kit.")
    problem = problem_with("image_size", size)
    if problem:
        raise RunFolderError(f"{run_dir / DATA}: image_size {problem}; it is not a record "
                             "the kit wrote.")
    return config, size


def best_epoch(rows: list[dict]) -> int:
    """The first epoch with the highest validation Dice (the one ``best.pt`` holds); 0 if none."""
    best, best_epoch = -1.0, 0
    for row in rows:
        if row["val_dice"] > best:
            best, best_epoch = row["val_dice"], int(row["epoch"])
    return best_epoch


def best_behind_last(run_dir: Path, last: dict | None = None,
                      rows: list[dict] | None = None) -> dict | None:
    """What ``best.pt`` should hold, from ``last.pt``, when a crash came between writing the
    two in the epoch that was the best so far (the weights are the same); else None.
    ``last`` and ``rows``: last.pt and its history, when the caller has read them already."""
    if last is None or rows is None:
        try:
            last = read_checkpoint(run_dir / LAST)
            rows = trusted_history(run_dir, last, HISTORY_COLUMNS)
        except RunFolderError:
            return None  # no usable last.pt: best.pt is all there is
    epoch = int(last["epoch"])
    if best_epoch(rows) != epoch:
        return None  # best.pt was written in an earlier, finished epoch
    best_path = run_dir / BEST
    if best_path.exists():
        with contextlib.suppress(RunFolderError):  # a damaged best.pt: last.pt has it
            if int(read_checkpoint(best_path)["epoch"]) == epoch:
                return None
    return {"model": last["model"], "epoch": epoch, "val_dice": float(last["best_dice"])}


def repair_best(out_dir: Path, last: dict, rows: list[dict]) -> None:
    """Write ``best.pt`` again if a crash left it behind ``last.pt`` (see
    :func:`best_behind_last`); only under the folder's lock, by the process that trains."""
    stand_in = best_behind_last(out_dir, last, rows)
    if stand_in is not None:
        save_checkpoint(stand_in, out_dir / BEST)


def resume_state(model: MobileNetV2UNet, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, config: TrainConfig, out_dir: Path,
                  fingerprint: dict, repair: bool = True) -> tuple[int, float, list[dict]]:
    """(first epoch to train, best Dice so far, history rows) of the run in ``out_dir``;
    with ``repair``, also a ``best.pt`` that a crash left one epoch behind is written."""
    last_path = out_dir / LAST
    # More epochs continue a constant-rate run; a cosine schedule depends on the epoch count
    check_settings(config, out_dir, compare_epochs=config.schedule == "cosine")
    check_data(out_dir, fingerprint)
    state = read_checkpoint(last_path, needs=("model", "epoch", "optimizer", "best_dice"))
    if int(state["epoch"]) > config.epochs:
        raise RunFolderError(f"{out_dir} holds {state['epoch']} epochs, more than the "
                             f"{config.epochs} asked for. Use another output folder, or "
                             "fit(..., fresh=True) to train it again.")
    load_checkpoint(last_path, model)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, ValueError) as error:
        raise RunFolderError(f"{last_path} has no usable optimiser state ({error}).") from error
    # float16 training's loss scale (runs without float16, and older runs, saved none)
    if scaler.is_enabled() and state.get("scaler"):
        try:
            scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, TypeError) as error:
            raise RunFolderError(f"{last_path} has no usable loss-scaler state ({error})."
                                 ) from error
    rows = trusted_history(out_dir, state, HISTORY_COLUMNS)
    if repair:
        repair_best(out_dir, state, rows)
    return int(state["epoch"]) + 1, float(state["best_dice"]), rows
