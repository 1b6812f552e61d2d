"""Choosing the device to compute on, mixed precision where it pays, and keeping freed
memory for reuse on a Linux CPU.

``"auto"`` takes the GPU when torch sees one and the CPU otherwise. Any other name is checked
before work starts, so a typo (``"gpu"``) or ``"cuda"`` on a machine without one stops with
the valid choices instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import PIL
import torch

from helpers.errors import UsageError
from helpers.system.kernels import cpu_model, describe_cpu_kind, kernels_capped

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` for ``name``; :class:`ValueError` naming the choices otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise UsageError(f"device {name!r} is not one of {', '.join(DEVICE_CHOICES)}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r}: torch sees no CUDA GPU on this machine; "
                             "use 'auto' or 'cpu'")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("device 'mps': Apple's Metal backend is not available here; "
                         "use 'auto' or 'cpu'")
    return torch.device(name)


def uses_channels_last(device: torch.device, wanted: bool = True) -> bool:
    """Whether images and the model go channels_last on ``device``: as ``wanted``, except on a
    CUDA GPU. There NCHW measured faster: cuDNN prepares each new batch shape in channels_last
    for seconds (report A's whole run on an H100: 128 s channels_last, 82 s NCHW; docs/speed.md),
    while on the CPU channels_last is the fast layout."""
    return wanted and device.type != "cuda"


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``x``'s layout: ``torch.channels_last`` if it is stored so, else the default NCHW."""
    return (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format)


#: The first CUDA compute capability that computes bfloat16 in hardware (Ampere, sm_80).
BF16_CAPABILITY = (8, 0)
#: Set this environment variable to ``float16``, ``bfloat16`` or ``float32`` to choose the
#: autocast precision of runs with ``amp`` on, on any device (the CPU included), instead of
#: the device's own: to rehearse a T4's float16 path, loss scaler and all, on another machine,
#: or to compare precisions on one GPU. ``auto``, empty or unset: the device decides.
PRECISION_VARIABLE = "LESIONKIT_PRECISION"
_PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": None}


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast precision on ``device``: bfloat16 on a CUDA GPU that computes it natively
    (compute capability 8.0 or newer), float16 on an older one (a T4, a V100; trained with a
    loss scaler), None (float32) on the CPU, where autocast does not pay for this model, or
    when ``enabled`` is false. ``LESIONKIT_PRECISION`` overrides the device's choice (not
    ``enabled``).

    ``torch.cuda.is_bf16_supported()`` is not asked: it also says yes where bfloat16 is only
    emulated, as on Colab's T4, which would then train slowly in emulated bfloat16."""
    if not enabled:
        return None
    forced = os.environ.get(PRECISION_VARIABLE) or "auto"
    if forced != "auto":
        if forced not in _PRECISIONS:
            raise UsageError(f"{PRECISION_VARIABLE}={forced!r} is not one of auto, "
                             f"{', '.join(_PRECISIONS)}")
        return _PRECISIONS[forced]
    if device.type != "cuda":
        return None
    capability = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if capability >= BF16_CAPABILITY else torch.float16


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """Autocast at :func:`autocast_dtype`'s precision; nothing where that is float32."""
    dtype = autocast_dtype(device, enabled)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def describe_precision(device: torch.device, enabled: bool = True) -> str:
    """The precision a run trains in, for its run folder and report."""
    return {None: "float32", torch.bfloat16: "bfloat16 autocast",
            torch.float16: "float16 autocast, loss scaling"}[autocast_dtype(device, enabled)]


# glibc's malloc settings (mallopt's parameter numbers, from <malloc.h>).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_KEEP = {_M_TRIM_THRESHOLD: 1 << 30, _M_MMAP_MAX: 0}
#: On exit: where glibc's own adaptive thresholds end up in a process that has freed a tensor
#: of 32 MiB or more (the most they adapt to on 64-bit), since glibc stops adapting them for
#: good once they are set.
_AFTER = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20, _M_MMAP_MAX: 65536}
_kept_depth = 0
_kept_lock = threading.Lock()
#: Set this environment variable to 0 to leave glibc's malloc as it is (less memory, slower).
KEEP_FREED_MEMORY_VARIABLE = "LESIONKIT_KEEP_FREED_MEMORY"


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library this process runs on if it is glibc (Linux), else None (macOS, Windows,
    musl): other C libraries number mallopt's parameters differently, or lack it."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), no such name
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None without glibc."""
    libc = _glibc()
    return None if libc is None else libc.mallopt


def _give_back_freed_memory() -> None:
    """glibc's ``malloc_trim(0)``: free heap pages go back to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def reusing_freed_memory(device: torch.device) -> Iterator[bool]:
    """While inside, freed CPU memory stays in the process for the next allocation (on the
    CPU with glibc, as on Linux); yields whether that is in effect. Results do not change:
    only where the memory of each new tensor comes from. The setting is the whole process's.

    Why: glibc gives each allocation above its mmap threshold (which adapts up to 32 MiB)
    its own pages from the kernel and returns them when it is freed, and it trims the top of
    its heap after large frees. A training step frees and allocates the same activations,
    tens of MiB each, every step, so every step the kernel hands out and zeroes tens of
    thousands of fresh pages (minor page faults). With glibc's ``mmap`` off and its trim
    threshold at 1 GiB, freed blocks stay in the heap and the next step reuses them. PyTorch's
    CPU tuning advice (preloading jemalloc or tcmalloc) is after the same thing; this needs
    no preloading (and does nothing for an allocator that is preloaded).

    What it costs: the heap holds some blocks it cannot reuse exactly, so the peak memory is
    higher (docs/speed.md has both figures). Set ``LESIONKIT_KEEP_FREED_MEMORY=0`` to
    leave glibc as it is.

    On exit, mmap is back on with the thresholds glibc's own adaptation reaches (32 MiB mmap,
    64 MiB trim: once set, glibc no longer adapts them), and the free heap pages go back to
    the system (``malloc_trim``).
    """
    global _kept_depth
    wanted = os.environ.get(KEEP_FREED_MEMORY_VARIABLE, "1") != "0"
    mallopt = _glibc_mallopt() if device.type == "cpu" and wanted else None
    if mallopt is None:
        yield False
        return
    with _kept_lock:
        if _kept_depth == 0:
            for parameter, value in _KEEP.items():
                mallopt(parameter, value)
        _kept_depth += 1
    try:
        yield True
    finally:
        with _kept_lock:
            _kept_depth -= 1
            if _kept_depth == 0:
                for parameter, value in _AFTER.items():
                    mallopt(parameter, value)
                _give_back_freed_memory()


def describe_cpu() -> str:
    """What decides a CPU run's bits besides torch's release: the processor, the kernels torch
    uses (``capped`` under ``LESIONKIT_CPU_KERNELS=avx2``) and its threads, e.g. ``AMD EPYC
    (AVX2 kernels, 2 threads)``."""
    capped = ", capped" if kernels_capped() else ""
    return (f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels{capped}, "
            f"{torch.get_num_threads()} threads)")


def describe_machine(device: torch.device, amp: bool = True) -> dict[str, str]:
    """What computed a run on ``device``, for its run folder and report: the device (the CPU
    model, kernels and threads; or the GPU's name), on a CPU its kind (vendor, family, model,
    instruction sets), the precision (``amp``: autocast wanted) and the releases that decide
    the bits."""
    if device.type == "cuda":
        machine = {"device": f"cuda: {torch.cuda.get_device_name(device)}"}
    else:
        machine = {"device": f"{device.type}: {describe_cpu()}", "cpu": describe_cpu_kind()}
    return {**machine, "precision": describe_precision(device, amp),
            "torch": torch.__version__, "pillow": PIL.__version__}
