"""Training on several processes (GPUs or machines) with ``torchrun``: the few collective
steps :func:`helpers.train.fit` needs, and nothing when there is a single process.

    torchrun --nproc_per_node 2 -m helpers.train_command --preset best --model fine_tuned

``torchrun`` starts one process per device and tells each its rank and the world size through
environment variables; :func:`start` joins them into one process group (NCCL between GPUs,
gloo on CPUs). In :func:`~helpers.train.fit` every process then takes its share of each
global batch (same global batch size, same shuffling as one process), DistributedDataParallel
averages the gradients, and the main process (rank 0) alone validates and writes the history
and checkpoints; the others receive its validation scores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    """This process's place among ``size`` processes; ``index`` 0 is the main one."""

    index: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


SINGLE = Rank()


def start(device: torch.device) -> Rank:
    """Join the process group ``torchrun`` describes (if it does, and if not joined yet)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return SINGLE
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size())


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
        raise RuntimeError(f"The main process stopped: {message}")


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
