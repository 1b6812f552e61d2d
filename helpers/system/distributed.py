"""Training on several processes (GPUs or machines) with ``torchrun``: the few collective
steps :func:`helpers.train.fit` needs, and nothing when there is a single process.

    torchrun --nproc_per_node 2 -m helpers train --preset best --model fine_tuned

``torchrun`` starts one process per device and tells each its rank and the world size through
environment variables; :func:`start` joins them into one process group (NCCL between GPUs,
gloo on CPUs). In :func:`~helpers.train.fit` every process then takes its share of each
global batch (same global batch size, same shuffling as one process), DistributedDataParallel
averages the gradients, and the main process (rank 0) alone validates and writes the history
and checkpoints; the others receive its validation scores. Before that, the command loads the
data with :func:`local_main_first`: one process per machine decodes the images into the
cache while the others wait, then they read the finished cache instead of decoding it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from helpers.errors import PartnerStopped


@dataclass(frozen=True)
class Rank:
    """This process's place among ``size`` processes; ``index`` 0 is the main one, and
    ``local_index`` is its place among the ``local_size`` processes on its own machine
    (0: the machine's first process)."""

    index: int = 0
    size: int = 1
    local_index: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


SINGLE = Rank()


#: How long the processes wait for a machine's first one to decode the whole data set
#: (:func:`local_main_first`); ``LESIONKIT_DISTRIBUTED_TIMEOUT_MIN`` changes it. Every other
#: collective step keeps torch's default (10 minutes for NCCL, 30 for gloo).
TIMEOUT_MINUTES = 120


def start(device: torch.device) -> Rank:
    """Join the process group ``torchrun`` describes (if it does, and if not joined yet)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return SINGLE
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


Result = TypeVar("Result")


def gathered(rank: Rank, value: object, group: object = None) -> list:
    """Every process's ``value``, in process order, on every process (``group``: the
    process group to use; the default one when None)."""
    if not rank.parallel:
        return [value]
    values: list = [None] * rank.size
    dist.all_gather_object(values, value, group=group)
    return values


def attempt(work: Callable[[], Result]) -> tuple[Result | None, Exception | None]:
    """``work()``'s result, or the error it raised (for :func:`meet`)."""
    try:
        return work(), None
    except Exception as error:  # noqa: BLE001 (raised again by meet, once all have met)
        return None, error


def meet(rank: Rank, error: Exception | None, doing: str, group: object = None) -> None:
    """Every process tells the others whether its work (``doing``) failed; each then raises
    its own error, or :class:`PartnerStopped` naming another's, or goes on if none failed."""
    problems = gathered(rank, None if error is None
                        else f"process {rank.index}: {type(error).__name__}: {error}", group)
    if error is not None:
        raise error
    stopped = [problem for problem in problems if problem is not None]
    if stopped:
        raise PartnerStopped(f"Another process stopped while {doing}: {stopped[0]}")


def local_main_first(rank: Rank, work: Callable[[], Result]) -> Result:
    """``work()`` on each machine's first process, then on the others of that machine.

    For work that fills a cache on the machine's disk (decoding the data set): the first
    process does it once, the others then find it done. The processes meet after each turn:
    if the work fails on any process, every process raises, and none waits for a partner
    that stopped.
    """
    if not rank.parallel:
        return work()
    # a group of their own for these two meetings: the others may wait long for the first
    minutes = float(os.environ.get("LESIONKIT_DISTRIBUTED_TIMEOUT_MIN", TIMEOUT_MINUTES))
    patient = dist.new_group(backend="gloo", timeout=timedelta(minutes=minutes))
    first = rank.local_index == 0
    try:
        result, error = attempt(work) if first else (None, None)
        meet(rank, error, "loading the data", patient)
        if not first:
            result, error = attempt(work)
        meet(rank, error, "loading the data", patient)
    finally:
        dist.destroy_process_group(patient)
    return result


def from_main(rank: Rank, value: object) -> object:
    """The main process's ``value``, on every process."""
    if not rank.parallel:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def raise_everywhere(rank: Rank, error: BaseException | None) -> None:
    """Raise the main process's ``error`` (if any) on every process, so none waits forever
    for a partner that stopped."""
    message = from_main(rank, None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise PartnerStopped(f"The main process stopped: {message}")


def total(rank: Rank, *values: float) -> list[float]:
    """Each of ``values`` summed over all processes."""
    if not rank.parallel:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(rank: Rank) -> None:
    if rank.parallel:
        dist.barrier()
