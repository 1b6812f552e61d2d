"""One set of CPU kernels on every x86-64 machine, so that a seeded run gives the same bits.

torch chooses its CPU kernels by the instructions the processor has: with AVX-512 its
convolutions (oneDNN) and its element-wise loops (ATen) use AVX-512 code, otherwise AVX2
code. Both are correct, but they add the same numbers in a different order, so their results
differ in the last bits, and training lets those differences grow. Report A's first training
loss is 0.6567128 with AVX2 kernels and 0.6567063 with AVX-512 ones, and after 50 epochs
model 2's official Jaccard is 0.838 against 0.832.

So that a report made on one machine comes out bit for bit on another, the kit caps torch at
AVX2 on x86-64 CPUs. Nearly all of them made since 2015 have AVX2 (some Celeron and Pentium
models do not, and compute with older kernels whatever the cap). This costs little: report
A's epochs took 2-6% longer on a 2-core AVX-512 machine. Both settings are environment
variables that torch reads the first time it computes, so :func:`cap_cpu_kernels` runs when
``helpers`` is imported, which every notebook does in its first cell.

This module imports no torch (the cap must be set before torch computes); the kernels a
process ended up with are :func:`helpers.system.device.describe_cpu`.

``LESIONKIT_CPU_KERNELS=native`` lets torch use the fastest kernels the CPU has instead.
More things decide the bits: the torch release (pinned in ``requirements.txt``), the number
of threads torch computes with (``torch.get_num_threads()``; the committed reports used 2)
and, for decoding the images, Pillow's release.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

SETTING = "LESIONKIT_CPU_KERNELS"
CHOICES = ("avx2", "native")
#: What torch reads: ATen's capability and oneDNN's highest instruction set.
AVX2_CAP = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def cap_cpu_kernels(environ: MutableMapping[str, str] = os.environ,
                    machine: str | None = None) -> None:
    """Set ``AVX2_CAP`` in ``environ`` on an x86-64 machine unless ``LESIONKIT_CPU_KERNELS``
    is ``native``. Variables the user set already are kept."""
    choice = environ.get(SETTING, "avx2").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{SETTING}={environ[SETTING]!r}: use {' or '.join(CHOICES)}")
    if choice == "native" or (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return
    for name, value in AVX2_CAP.items():
        environ.setdefault(name, value)
    torch = sys.modules.get("torch")
    if torch is not None and environ is os.environ and environ["ATEN_CPU_CAPABILITY"] == "avx2" \
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        warnings.warn("torch computed before helpers was imported, so this process uses its "
                      "AVX-512 kernels: results differ in the last bits from the kit's AVX2 "
                      "ones. Import helpers first to match the reports.", stacklevel=2)


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The processor's model name (``AMD EPYC 9B14``, ``Intel(R) Xeon(R) ...``), as the
    operating system reports it; what else to name when bits differ between machines."""
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"
