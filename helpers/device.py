"""Choosing the device to compute on, and mixed precision where it pays.

``"auto"`` takes the GPU when torch sees one and the CPU otherwise. Any other name is checked
before work starts, so a typo (``"gpu"``) or ``"cuda"`` on a machine without one stops with
the valid choices instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` for ``name``; :class:`ValueError` naming the choices otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise ValueError(f"device {name!r} is not one of {', '.join(DEVICE_CHOICES)}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: torch sees no CUDA GPU on this machine; "
                             "use 'auto' or 'cpu'")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps': Apple's Metal backend is not available here; "
                         "use 'auto' or 'cpu'")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """bfloat16 (else float16) autocast on a CUDA GPU; nothing on the CPU, where it does not
    pay for this model."""
    if device.type != "cuda" or not enabled:
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
