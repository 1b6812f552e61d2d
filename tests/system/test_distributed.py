"""fit under torchrun: two CPU processes (gloo) train like one with the same global batch,
only the main process writes, a stopped run resumes, and only one process decodes the data."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.config import TrainConfig, load_config
from helpers.errors import PartnerStopped, RunFolderError
from helpers.isic2016 import load_isic2016, load_splits
from helpers.model import build_model
from helpers.runs import HISTORY_COLUMNS
from helpers.system import distributed
from helpers.system.distributed import Rank, local_main_first
from helpers.train import epoch_batches, fit, share_weight

COLUMNS = [c for c in HISTORY_COLUMNS if c != "seconds"]
#: Per-process BatchNorm statistics (SyncBatchNorm works on GPUs only) make two processes
#: differ slightly from one; with 4 images per process this is the stated tolerance.
TOLERANCE = {"train_loss": 0.05, "val_loss": 0.05, "val_dice": 0.08}


#: helpers.commands.train, with each decoding of images written to $DECODE_LOG as
#: "<process> <images>" (the processes' own decoding, counted where it happens), and the RAM
#: limit each process loads its splits with to memory.log beside it.
COUNTING_COMMAND = """
import os, sys
import helpers.decode, helpers.isic2016
decoding = helpers.decode._decoding
def counted(pairs, size, workers):
    with open(os.environ["DECODE_LOG"], "a") as log:
        log.write(f"{os.environ['RANK']} {len(pairs)}\\n")
    return decoding(pairs, size, workers)
helpers.decode._decoding = counted
load_splits = helpers.isic2016.load_splits
def logged_load_splits(config, progress=True):
    with open(os.environ["DECODE_LOG"].replace("decoded", "memory"), "a") as log:
        log.write(f"{os.environ['RANK']} {config.in_memory_gb!r}\\n")
    return load_splits(config, progress)
helpers.isic2016.load_splits = logged_load_splits
from helpers.commands.train import main
sys.exit(main(sys.argv[1:]))
"""


def launch(data_root: Path, output_dir: Path, train: dict) -> subprocess.CompletedProcess:
    """train_command's fine-tuned smoke run (``train``: its overrides) on two processes, with
    its own decode cache (in ``output_dir``) and a log of who decoded,
    ``output_dir / "decoded.log"``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    script = output_dir / "counting_train_command.py"
    script.write_text(COUNTING_COMMAND)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(script), "--preset", "smoke",
               "--model", "fine_tuned", "--data-root", str(data_root),
               "--output-dir", str(output_dir), "--overrides", json.dumps({"train": train})]
    repository = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repository),
           "LESIONKIT_CACHE": str(output_dir / "cache"),
           "DECODE_LOG": str(output_dir / "decoded.log")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          cwd=repository)


def torchrun(data_root: Path, output_dir: Path, epochs: int) -> pd.DataFrame:
    """:func:`launch` for ``epochs`` epochs, which must succeed; the run's history."""
    done = launch(data_root, output_dir, {"epochs": epochs})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("fine_tuned: ") == 2  # both processes finished
    return pd.read_csv(output_dir / "runs" / "fine_tuned" / "history.csv")


@pytest.fixture(scope="module")
def two_processes(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    torchrun(synthetic_root, out / "straight", epochs=2)
    return out


def test_two_processes_match_one_with_the_same_global_batch(synthetic_root: Path,
                                                            two_processes: Path,
                                                            tmp_path: Path) -> None:
    config = load_config("smoke", data_root=synthetic_root, output_dir=tmp_path)
    splits = load_splits(config, progress=False)
    one = fit(build_model(config.fine_tuned), splits.train, splits.val, config.fine_tuned,
              tmp_path / "one", progress=False)
    two = pd.read_csv(two_processes / "straight" / "runs" / "fine_tuned" / "history.csv")
    assert list(two["epoch"]) == [1, 2]
    for column, tolerance in TOLERANCE.items():
        assert (one[column] - two[column]).abs().max() <= tolerance, (column, one, two)
    # the first batch saw the same weights and images: the first epoch is very close
    assert abs(one["train_loss"][0] - two["train_loss"][0]) < 0.01


def test_main_process_alone_writes_and_a_stopped_run_resumes(synthetic_root: Path,
                                                            two_processes: Path) -> None:
    folder = two_processes / "straight" / "runs" / "fine_tuned"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "best.pt", "config.json", "data.json", "history.csv", "last.pt", "machine.json"]
    torchrun(synthetic_root, two_processes / "resumed", epochs=1)
    resumed = torchrun(synthetic_root, two_processes / "resumed", epochs=2)
    assert len(decodings(two_processes / "resumed")) == 2  # the second run found the cache
    straight = pd.read_csv(folder / "history.csv")
    pd.testing.assert_frame_equal(resumed[COLUMNS], straight[COLUMNS], atol=1e-6)


def decodings(output_dir: Path) -> list[tuple[str, int]]:
    """(process, images) of each decoding the runs into ``output_dir`` did."""
    lines = (output_dir / "decoded.log").read_text().splitlines()
    return [(process, int(images)) for process, images in map(str.split, lines)]


def test_one_process_decodes_the_data_and_the_other_reads_the_cache(two_processes: Path
                                                                     ) -> None:
    decoded = decodings(two_processes / "straight")
    # the smoke preset's training and test splits, each decoded once, by process 0
    assert [process for process, _ in decoded] == ["0", "0"]
    assert all(images > 0 for _, images in decoded)


def test_the_processes_of_a_machine_share_its_ram_limit(two_processes: Path) -> None:
    limit = load_config("smoke").in_memory_gb
    lines = (two_processes / "straight" / "memory.log").read_text().split("\n")
    assert sorted(line.split() for line in lines if line) == [["0", repr(limit / 2)],
                                                               ["1", repr(limit / 2)]]


class FakeGroup:
    """Stands in for torch.distributed's all_gather_object: records what this process sent
    and when, and returns what the other processes "sent" in each round."""

    def __init__(self, rounds: list[list[str | None]], events: list[str]) -> None:
        self.rounds, self.events = list(rounds), events

    def all_gather_object(self, gathered: list, mine: str | None, group=None) -> None:
        self.events.append(f"gathered {mine}")
        gathered[:] = [mine, *self.rounds.pop(0)]


def _group(monkeypatch: pytest.MonkeyPatch, events: list[str],
           rounds: list[list[str | None]]) -> None:
    monkeypatch.setattr(distributed.dist, "all_gather_object",
                        FakeGroup(rounds, events).all_gather_object)
    monkeypatch.setattr(distributed.dist, "new_group", lambda **settings: "patient group")
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda group: None)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    recorded: list[str] = []
    _group(monkeypatch, recorded, [[None], [None]])  # the other process: no failures
    return recorded


def _work(events: list[str], fails: bool = False):
    def work() -> str:
        events.append("work")
        if fails:
            raise ValueError("bad image ISIC_0000001.jpg")
        return "splits"
    return work


BAD_IMAGE = "ValueError: bad image ISIC_0000001.jpg"


def test_the_machines_first_process_works_before_the_others_wait_for_it(events) -> None:
    assert local_main_first(Rank(0, 2, 0, 2), _work(events)) == "splits"
    assert events == ["work", "gathered None", "gathered None"]


def test_the_other_processes_work_after_the_first_one_finished(events) -> None:
    assert local_main_first(Rank(1, 2, 1, 2), _work(events)) == "splits"
    assert events == ["gathered None", "work", "gathered None"]


def test_a_failure_of_the_first_process_stops_every_process(events, monkeypatch) -> None:
    with pytest.raises(ValueError, match="ISIC_0000001"):
        local_main_first(Rank(0, 2, 0, 2), _work(events, fails=True))
    assert events == ["work", f"gathered process 0: {BAD_IMAGE}"]
    events.clear()
    _group(monkeypatch, events, [[f"process 0: {BAD_IMAGE}"]])
    with pytest.raises(PartnerStopped, match="process 0: ValueError: bad image"):
        local_main_first(Rank(1, 2, 1, 2), _work(events))
    assert events == ["gathered None"]  # it did not start the work


def test_a_failure_of_another_process_stops_the_first_one_too(events, monkeypatch) -> None:
    _group(monkeypatch, events, [[None], [f"process 1: {BAD_IMAGE}"]])
    with pytest.raises(PartnerStopped, match="process 1: ValueError: bad image"):
        local_main_first(Rank(0, 2, 0, 2), _work(events))
    assert events == ["work", "gathered None", "gathered None"]
    events.clear()
    _group(monkeypatch, events, [[None], [None]])
    with pytest.raises(ValueError, match="ISIC_0000001"):
        local_main_first(Rank(1, 2, 1, 2), _work(events, fails=True))
    assert events == ["gathered None", "work", f"gathered process 1: {BAD_IMAGE}"]


@pytest.fixture(scope="module")
def tiny_splits(synthetic_root: Path):
    return load_isic2016(synthetic_root, size=64, val_fraction=0.25)


def as_main_of_two(monkeypatch: pytest.MonkeyPatch, events: list[str],
                   rounds: list[list[object]]) -> None:
    """fit believes it is process 0 of 2; the other "sends" ``rounds``."""
    monkeypatch.setattr(distributed, "start", lambda device: Rank(0, 2, 0, 2))
    monkeypatch.setattr(distributed.dist, "broadcast_object_list", lambda box, src: None)
    _group(monkeypatch, events, rounds)


def test_processes_that_find_different_runs_stop_and_ask_for_a_shared_folder(
        tiny_splits, tmp_path: Path, monkeypatch, events) -> None:
    config = TrainConfig(epochs=2, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
    single = dataclasses.replace(config, epochs=1)
    fit(build_model(single), tiny_splits.train, tiny_splits.val, single, tmp_path,
        progress=False)
    # the other process (on another machine) sees no last.pt: it would start at epoch 1
    as_main_of_two(monkeypatch, events, [[None], [1]])
    with pytest.raises(RunFolderError, match=r"different runs .*epochs \[2, 1\].*one shared "
                                             "folder"):
        fit(build_model(config), tiny_splits.train, tiny_splits.val, config, tmp_path,
            resume=True, progress=False)


def test_a_batch_smaller_than_the_number_of_processes_is_refused(tiny_splits, tmp_path: Path,
                                                                 monkeypatch, events) -> None:
    config = TrainConfig(epochs=1, batch_size=1, freeze_encoder=True, decoder_lr=1e-2)
    as_main_of_two(monkeypatch, events, [])
    with pytest.raises(ValueError, match="2 processes share each batch, but batch_size is 1"):
        fit(build_model(config), tiny_splits.train, tiny_splits.val, config, tmp_path,
            progress=False)
    assert not list(tmp_path.iterdir())


def test_under_torchrun_a_batch_too_small_is_refused_once_before_any_decoding(
        synthetic_root: Path, tmp_path: Path) -> None:
    done = launch(synthetic_root, tmp_path, {"epochs": 1, "batch_size": 3})
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert said.count("ERROR: ") == 1
    assert "ERROR: 2 processes share each batch, but batch_size is 3: every process needs at " \
           "least two images of every batch (BatchNorm).\n" in said
    assert "/helpers/" not in said  # no traceback through the kit (torchrun prints its own)
    assert not (tmp_path / "decoded.log").exists()  # no process decoded anything
    assert not (tmp_path / "runs").exists()


def test_a_last_batch_too_small_for_every_process_is_merged_into_the_one_before() -> None:
    shuffle = torch.Generator().manual_seed(0)
    four = distributed.Rank(1, 4, 1, 4)
    assert [len(b) for b in epoch_batches(23, 8, shuffle, four)] == [8, 15]  # 7 < 2 x 4
    assert [len(b) for b in epoch_batches(24, 8, shuffle, four)] == [8, 8, 8]
    assert [len(b) for b in epoch_batches(17, 8, shuffle)] == [8, 9]  # one process: 1 image
    assert [len(b) for b in epoch_batches(18, 8, shuffle)] == [8, 8, 2]


def test_weighted_shares_of_unequal_size_average_to_the_whole_batchs_gradient() -> None:
    # what DistributedDataParallel computes: the mean over processes of each one's gradient
    weight = torch.randn(3, requires_grad=True)
    images = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    two = distributed.Rank(0, 2, 0, 2)

    def gradient(rows: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        loss = (rows @ weight).pow(2).mean() * factor
        return torch.autograd.grad(loss, weight)[0]

    shares = [images[0::2], images[1::2]]  # 4 and 3 images
    averaged = sum(gradient(share, share_weight(len(share), 7, two)) for share in shares) / 2
    torch.testing.assert_close(averaged, gradient(images))
    assert share_weight(4, 8, two) == 1.0  # equal shares: unchanged


def test_a_single_process_just_works(events) -> None:
    assert local_main_first(Rank(), _work(events)) == "splits"
    assert events == ["work"]
