"""Run folders stay trustworthy: the data a run was trained on, a history that agrees with
its checkpoint, one process at a time, and damaged files named with what to do."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.config import TrainConfig
from helpers.errors import RunFolderError
from helpers.isic2016 import load_isic2016
from helpers.model import build_model
from helpers.runs import HISTORY_COLUMNS, load_trained, read_run_settings
from helpers.runs.folder import locked
from helpers.train import fit

CONFIG = TrainConfig(epochs=2, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
COLUMNS = [c for c in HISTORY_COLUMNS if c != "seconds"]


@pytest.fixture(scope="module")
def splits(synthetic_root: Path):
    return load_isic2016(synthetic_root, size=64, val_fraction=0.25)


def train(splits, out: Path, config: TrainConfig = CONFIG, **kwargs) -> pd.DataFrame:
    return fit(build_model(config), splits.train, splits.val, config, out, progress=False,
               **kwargs)


def test_resuming_with_other_images_is_refused(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    fewer = splits.train.subset(range(len(splits.train) - 1))
    with pytest.raises(RunFolderError, match="trained on other data .*train"):
        fit(build_model(CONFIG), fewer, splits.val, CONFIG, tmp_path, resume=True,
            progress=False)


def test_resuming_at_another_image_size_is_refused(synthetic_root: Path, tmp_path: Path) -> None:
    small = load_isic2016(synthetic_root, size=32, val_fraction=0.25)
    train(small, tmp_path, dataclass_epochs(1))
    large = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    with pytest.raises(RunFolderError, match="image_size: the run has 32, now 64"):
        train(large, tmp_path, resume=True)


def test_same_images_with_other_pixels_are_other_data(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    changed = splits.train.subset(range(len(splits.train)))
    changed.images = changed.images.copy()
    changed.images[0] = 255 - changed.images[0]
    with pytest.raises(RunFolderError, match="other data"):
        fit(build_model(CONFIG), changed, splits.val, CONFIG, tmp_path, resume=True,
            progress=False)


def test_fresh_on_request_starts_again(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    fewer = splits.train.subset(range(len(splits.train) - 1))
    history = fit(build_model(CONFIG), fewer, splits.val, CONFIG, tmp_path, fresh=True,
                  progress=False)
    assert list(history["epoch"]) == [1, 2]
    assert json.loads((tmp_path / "data.json").read_text())["train"]["images"] == len(fewer)


def test_truncated_history_is_rebuilt_from_last_checkpoint(splits, tmp_path: Path) -> None:
    straight = train(splits, tmp_path / "straight", dataclass_epochs(3))
    train(splits, tmp_path / "cut", dataclass_epochs(2))
    history = tmp_path / "cut" / "history.csv"
    history.write_text(history.read_text()[:150])  # cut in the middle of epoch 1's row
    resumed = train(splits, tmp_path / "cut", dataclass_epochs(3), resume=True)
    pd.testing.assert_frame_equal(straight[COLUMNS], resumed[COLUMNS], check_dtype=False)
    on_disk = pd.read_csv(history)
    assert list(on_disk["epoch"]) == [1, 2, 3] and on_disk[COLUMNS].notna().all().all()


def test_empty_history_is_rebuilt_from_last_checkpoint(splits, tmp_path: Path) -> None:
    train(splits, tmp_path)
    (tmp_path / "history.csv").write_text("")
    history = train(splits, tmp_path, resume=True)  # finished: nothing to train
    assert list(history["epoch"]) == [1, 2]
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1, 2]


def test_history_that_disagrees_with_an_old_checkpoint_is_refused(splits, tmp_path) -> None:
    train(splits, tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    del state["history"]  # as written by earlier versions of the kit
    torch.save(state, tmp_path / "last.pt")
    frame = pd.read_csv(tmp_path / "history.csv")
    frame.loc[1, "val_dice"] = np.nan
    frame.to_csv(tmp_path / "history.csv", index=False)
    with pytest.raises(RunFolderError, match=r"history\.csv does not agree with .*last\.pt"):
        train(splits, tmp_path, resume=True)


@pytest.mark.parametrize("damage", ["truncated", "foreign", "wrong types"])
def test_unreadable_checkpoint_is_named_with_what_to_do(splits, tmp_path: Path,
                                                        damage: str) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    last = tmp_path / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:1000])
    elif damage == "foreign":
        torch.save({"state_dict": {"weight": torch.zeros(2)}}, last)  # another program's
    else:
        state = torch.load(last, weights_only=True)
        torch.save({**state, "epoch": "one", "model": [1, 2]}, last)
    with pytest.raises(RunFolderError, match=r"last\.pt (cannot be read|is not a lesionkit "
                                             r"checkpoint|is damaged or not a lesionkit "
                                             r"checkpoint \(model is a list, epoch is a str\))"
                                             r".*Delete the folder"):
        train(splits, tmp_path, resume=True)
    with pytest.raises(RunFolderError, match=r"last\.pt"):
        load_trained(CONFIG, tmp_path)


def test_a_run_without_its_data_record_is_not_resumed_on_unchecked_data(splits,
                                                                         tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    (tmp_path / "data.json").unlink()
    with pytest.raises(RunFolderError, match=r"no data\.json.*cannot be checked"):
        train(splits, tmp_path, resume=True)
    assert not (tmp_path / "data.json").exists()  # nothing recorded as if it had been checked


def test_broken_config_json_is_named(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(RunFolderError, match=r"config\.json cannot be read"):
        train(splits, tmp_path, resume=True)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("config.json", None, r"config\.json does not hold valid training settings \(seed must be a "
                          r"whole number from 0 to 2\*\*32 - 1 \(4294967295\), not 10{30}\)"),
    ("data.json", '{"image_size": 1048576}', r"data\.json: image_size must be a multiple of 32 "
                                             r"from 32 to 1024 .* 4,096\.00 GiB"),
    ("config.json", "[" * 100_000 + "]" * 100_000, r"config\.json cannot be read"),
    ("config.json", '{"seed": 1' + "0" * 5000 + "}", r"config\.json cannot be read"),
    ("data.json", " " * (2 * 1024 * 1024) + "{}", r"data\.json is 2,097,154 bytes, not a record "
                                                   "the kit wrote"),
])
def test_absurd_records_in_a_run_folder_are_named_before_any_work(
        splits, tmp_path: Path, name: str, text: str | None, message: str) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    if text is None:  # the saved settings with an absurd seed
        saved = json.loads((tmp_path / name).read_text())
        text = json.dumps({**saved, "seed": 10**30})
    (tmp_path / name).write_text(text)
    with pytest.raises(RunFolderError, match=message):
        read_run_settings(tmp_path)


def test_checkpoint_of_another_model_shape_is_named(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["model"] = {"decoder.head.0.weight": torch.zeros(3)}
    torch.save(state, tmp_path / "best.pt")
    with pytest.raises(RunFolderError, match=r"best\.pt does not fit this model"):
        load_trained(CONFIG, tmp_path, "best")


def _hold_lock(folder: str, ready, release) -> None:
    with locked(Path(folder)):
        ready.set()
        release.wait(30)


def test_a_second_run_into_a_busy_folder_is_refused(splits, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunFolderError, match=f"is in use: process {holder.pid}"):
            train(splits, tmp_path)
        assert not (tmp_path / "last.pt").exists()
    finally:
        release.set()
        holder.join(30)
    train(splits, tmp_path, dataclass_epochs(1))  # free again once the holder is done


def test_a_lock_file_left_by_a_dead_process_does_not_block(splits, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    gone = context.Process(target=os.getpid)
    gone.start()
    gone.join()
    (tmp_path / ".lock").write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename,
                                                "since": "earlier"}))
    assert len(train(splits, tmp_path, dataclass_epochs(1))) == 1
    assert (tmp_path / ".lock").read_text() == ""  # released: no holder named


def dataclass_epochs(epochs: int) -> TrainConfig:
    import dataclasses
    return dataclasses.replace(CONFIG, epochs=epochs)


def test_resuming_with_fewer_epochs_than_trained_is_refused(splits, tmp_path: Path) -> None:
    train(splits, tmp_path)  # 2 epochs
    with pytest.raises(RunFolderError, match="holds 2 epochs, more than the 1 asked for"):
        train(splits, tmp_path, dataclass_epochs(1), resume=True)
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 2


def test_written_files_are_not_private_to_their_owner(splits, tmp_path: Path) -> None:
    train(splits, tmp_path, dataclass_epochs(1))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("history.csv", "last.pt", "config.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
