"""A training run's folder, and everything that keeps it trustworthy::

    history.csv   one row per finished epoch (also kept inside last.pt)
    last.pt       model, optimiser and history after the latest epoch (for resuming)
    best.pt       model weights of the epoch with the best validation Dice
    config.json   the TrainConfig the run was started with
    data.json     a fingerprint of the data it was trained on
    machine.json  the machines that trained it: from which epoch on, the CPU (model, kind,
                  kernels, threads) or GPU, precision, torch and Pillow
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
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers.data import SegmentationSet
from helpers.errors import RunFolderError, shown
from helpers.system.atomic import write_text
from helpers.system.cache import array_chunks

HISTORY, LAST, BEST, CONFIG, DATA, LOCK = ("history.csv", "last.pt", "best.pt", "config.json",
                                           "data.json", ".lock")
RUN_FILES = (HISTORY, LAST, BEST, CONFIG, DATA)
SCORING, MACHINE = "scoring.json", "machine.json"
#: The columns of ``history.csv``, one row per finished epoch.
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "val_soft_iou",
                   "val_soft_dice", "lr_encoder", "lr_decoder", "seconds"]


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
        details = "; ".join(f"{key}: the run has {shown(saved.get(key))}, now {fingerprint[key]}"
                            for key in differ)
        raise RunFolderError(f"{folder} holds a run trained on other data ({details}). "
                             + _start_again(folder))


#: A run folder's JSON records are a few hundred bytes; a larger one is not the kit's.
MAX_RECORD_BYTES = 1024 * 1024


def read_json(path: Path, advice: str | None = None) -> dict:
    """A run folder's JSON record (a mapping), or :class:`RunFolderError` naming the file and
    ending with ``advice`` (by default: how to start the run again)."""
    advice = advice or _start_again(path.parent)
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise RunFolderError(f"{path} is {size:,} bytes, not a record the kit wrote. "
                                 + advice)
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:  # JSON and Unicode errors too
        raise RunFolderError(f"{path} cannot be read ({error}). {advice}") from error
    if not isinstance(value, dict):
        raise RunFolderError(f"{path} does not hold a mapping. {advice}")
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
    for name in (*RUN_FILES, SCORING, MACHINE):
        (folder / name).unlink(missing_ok=True)


def record_machine(folder: Path, first_epoch: int, machine: dict) -> None:
    """Add to ``machine.json`` that the epochs from ``first_epoch`` on are trained on
    ``machine`` (its device and software): bits differ between kinds of machine, so a run
    says where each of its epochs was computed. A resumed run adds a line."""
    path = folder / MACHINE
    entries = read_json(path).get("trained", []) if path.exists() else []
    entries = [entry for entry in entries if entry.get("from_epoch", 0) < first_epoch]
    entries.append({"from_epoch": first_epoch, **machine})
    write_text(path, json.dumps({"trained": entries}, indent=2) + "\n")
