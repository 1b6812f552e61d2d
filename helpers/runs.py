"""A training run's folder, and everything that keeps it trustworthy::

    history.csv   one row per finished epoch (also kept inside last.pt)
    last.pt       model, optimiser and history after the latest epoch (for resuming)
    best.pt       model weights of the epoch with the best validation Dice
    config.json   the TrainConfig the run was started with
    data.json     a fingerprint of the data it was trained on
    scoring.json  how notebook 04 scored the model (checkpoint, threshold, test-time flips), so
                  that predicting and evaluating later use the same; written after training
    .lock         locked while a process trains in the folder (its text: who, since when)

Why each piece: resuming with other images or another size would continue into one mixed
history, and a notebook that reuses an output folder would score new data with old models,
so the data fingerprint must match. ``history.csv`` can be cut short by a crash or an editor;
``last.pt`` holds the rows it was saved with, so the history is rebuilt from it. Two processes
training into one folder would overwrite each other's checkpoints, so the second one stops,
naming the first. Any file that cannot be read stops with its name and what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import socket
import time
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers.atomic import write_text
from helpers.cache import array_chunks
from helpers.data import SegmentationSet

HISTORY, LAST, BEST, CONFIG, DATA, LOCK = ("history.csv", "last.pt", "best.pt", "config.json",
                                           "data.json", ".lock")
RUN_FILES = (HISTORY, LAST, BEST, CONFIG, DATA)
SCORING = "scoring.json"


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as it is; the message names the file and what to do."""


def _start_again(folder: Path) -> str:
    return (f"Delete the folder {folder} to start this run again (or call fit with fresh=True), "
            "or choose another output folder.")


def _digest(chunks: Iterable[bytes]) -> str:
    """The first 16 hex digits of the SHA-256 of ``chunks`` joined (read one at a time)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:16]


def data_fingerprint(train: SegmentationSet, val: SegmentationSet, pretrained: bool,
                     data_root: str = "") -> dict:
    """What a run was trained and validated on: ids, image size, pixels and the encoder's
    starting point. ``data_root`` is recorded for people; it is not compared (the same
    images in another folder are the same data)."""
    def describe(data: SegmentationSet) -> dict:
        ids = "\n".join(data.ids).encode()
        return {"images": len(data), "ids": _digest([ids]),
                "pixels": _digest(chain(array_chunks(data.images), array_chunks(data.masks)))}

    return {"image_size": train.image_size, "pretrained": pretrained,
            "train": describe(train), "validation": describe(val), "data_root": data_root}


def check_data(folder: Path, fingerprint: dict) -> None:
    """Refuse to go on in ``folder`` when its run was trained on other data."""
    path = folder / DATA
    if not path.exists():
        raise RunFolderError(f"{folder} holds a run but no {DATA}, so the data it was trained "
                             "on cannot be checked. " + _start_again(folder))
    saved = read_json(path)
    compared = ("image_size", "pretrained", "train", "validation")
    differ = [key for key in compared if saved.get(key) != fingerprint[key]]
    if differ:
        details = "; ".join(f"{key}: the run has {saved.get(key)}, now {fingerprint[key]}"
                            for key in differ)
        raise RunFolderError(f"{folder} holds a run trained on other data ({details}). "
                             + _start_again(folder))


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} cannot be read ({error}). "
                             + _start_again(path.parent)) from error
    if not isinstance(value, dict):
        raise RunFolderError(f"{path} does not hold a mapping. " + _start_again(path.parent))
    return value


#: What the entries of a checkpoint must be.
CHECKPOINT_TYPES = {"model": dict, "optimizer": dict, "epoch": int, "best_dice": (int, float)}


def read_checkpoint(path: Path, needs: tuple[str, ...] = ("model", "epoch")) -> dict:
    """A checkpoint written by :func:`helpers.train.fit`, loaded safely (``weights_only``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise RunFolderError(f"{path} does not exist: train the model first.") from error
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:
        raise RunFolderError(f"{path} cannot be read: it is damaged or not a checkpoint "
                             f"({type(error).__name__}: {str(error)[:200]}). "
                             + _start_again(path.parent)) from error
    missing = [key for key in needs if not isinstance(state, dict) or key not in state]
    if missing:
        raise RunFolderError(f"{path} is not a lesionkit checkpoint (it lacks "
                             f"{', '.join(missing)}). " + _start_again(path.parent))
    wrong = [f"{key} is a {type(state[key]).__name__}" for key in needs
             if key in CHECKPOINT_TYPES and not isinstance(state[key], CHECKPOINT_TYPES[key])]
    if wrong:
        raise RunFolderError(f"{path} is damaged or not a lesionkit checkpoint "
                             f"({', '.join(wrong)}). " + _start_again(path.parent))
    return state


def trusted_history(folder: Path, state: dict, columns: list[str]) -> list[dict]:
    """The rows of the epochs ``last.pt`` holds, 1 .. its epoch.

    They come from ``last.pt`` itself where it has them (``history.csv`` is then rewritten
    if it disagrees); else from ``history.csv``, which must then have exactly those epochs
    with finite values.
    """
    epochs = int(state["epoch"])
    if "history" in state:
        return [dict(row) for row in state["history"]][:epochs]
    path = folder / HISTORY
    try:
        history = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise RunFolderError(f"{path} cannot be read ({error}) and {folder / LAST} does not "
                             "hold the history. " + _start_again(folder)) from error
    history = history[history.get("epoch", pd.Series(dtype=int)) <= epochs] \
        if "epoch" in history else history
    wrong = (list(history.columns) != columns
             or list(history["epoch"]) != list(range(1, epochs + 1))
             or not np.isfinite(history.drop(columns="seconds").to_numpy(float)).all())
    if wrong:
        raise RunFolderError(f"{path} does not agree with {folder / LAST} (epochs 1 to "
                             f"{epochs} with finite values expected). " + _start_again(folder))
    return history.to_dict("records")


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock while training; refuse when another process holds it.

    The lock is an operating-system lock on ``.lock`` (``fcntl.flock``): the kernel releases
    it when its process ends, however it ends, so a crashed run never blocks the next one.
    The file's text only says who holds it, for the message.
    """
    path = folder / LOCK
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunFolderError(
                f"{folder} is in use: {holder} is training there ({path}). Wait for it to "
                "finish, or train into another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # released when the file closes; the empty file may stay


def clear(folder: Path) -> None:
    """Remove a run's files from ``folder`` (for a fresh start on request)."""
    for name in (*RUN_FILES, SCORING):
        (folder / name).unlink(missing_ok=True)


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
    try:
        scoring = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} cannot be read ({error}). {again}") from error
    types = {"checkpoint": str, "epoch": int, "checkpoint_sha256": str,
             "threshold": (int, float), "test_time_flips": bool}
    # (a JSON true is a bool, and Python's bool is an int: only test_time_flips may be one)
    wrong = [key for key, kind in types.items() if not isinstance(scoring, dict)
             or not isinstance(scoring.get(key), kind)
             or (kind is not bool and isinstance(scoring.get(key), bool))]
    if wrong or scoring["checkpoint"] not in ("last", "best") \
            or not 0 < scoring["threshold"] < 1:
        raise RunFolderError(f"{path} is not a scoring record the kit wrote (check "
                             f"{', '.join(wrong) or 'checkpoint and threshold'}). {again}")
    return scoring
