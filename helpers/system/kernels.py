"""The CPU kernels torch computes with: the fastest the processor has, unless a cap is asked for.

torch chooses its CPU kernels by the instructions the processor has: with AVX-512 its
convolutions (oneDNN) and its element-wise loops (ATen) use AVX-512 code, otherwise AVX2
code. Both are correct, but they add the same numbers in a different order, so their results
differ in the last bits, and training lets those differences grow.

By default the kit leaves the choice to torch, which takes the fastest kernels. A seeded run
then gives the same bits again on the same kind of machine: the same CPU model, threads,
torch and Pillow releases (:func:`describe_cpu_kind` names the processor; the run folder's
``machine.json`` and the report's title block record it with the kernels).

``LESIONKIT_CPU_KERNELS=avx2`` caps torch at AVX2 on x86-64 CPUs. What it buys was measured on
this project's machines: AMD EPYC processors with and without AVX-512 then give the same bits
(whole runs of reports A and B), so a report made on one of them can be checked on the other;
an Intel Xeon still differs in the last bits under the cap (oneDNN also chooses its blockings
by the processor within one instruction set). What it costs: on an Intel Xeon with AVX-512
and AMX, report A's epochs took 1.32x (frozen encoder) and 1.21x (fine-tuned) as long.

Both settings are environment variables that torch reads the first time it computes, so
:func:`cap_cpu_kernels` runs when ``helpers`` is imported, which every notebook does in its
first cell. This module imports no torch (the cap must be set before torch computes); the
kernels a process ended up with are :func:`helpers.system.device.describe_cpu`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings
from collections.abc import Mapping, MutableMapping
from pathlib import Path

SETTING = "LESIONKIT_CPU_KERNELS"
CHOICES = ("native", "avx2")
#: What torch reads: ATen's capability and oneDNN's highest instruction set.
AVX2_CAP = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CPUINFO = Path("/proc/cpuinfo")


def kernels_choice(environ: Mapping[str, str] = os.environ) -> str:
    """``native`` (the default) or ``avx2``, from ``LESIONKIT_CPU_KERNELS``; another value is
    refused with the variable and the choices named."""
    choice = environ.get(SETTING, "native").strip().lower() or "native"
    if choice not in CHOICES:
        raise ValueError(f"{SETTING}={environ[SETTING]!r}: use {' or '.join(CHOICES)}")
    return choice


def is_x86_64(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64")


def kernels_capped(environ: Mapping[str, str] = os.environ, machine: str | None = None) -> bool:
    """Whether this process's kernels are capped at AVX2 by ``LESIONKIT_CPU_KERNELS=avx2``."""
    return kernels_choice(environ) == "avx2" and is_x86_64(machine)


def cap_cpu_kernels(environ: MutableMapping[str, str] = os.environ,
                    machine: str | None = None) -> None:
    """Set ``AVX2_CAP`` in ``environ`` on an x86-64 machine when ``LESIONKIT_CPU_KERNELS`` is
    ``avx2``; otherwise leave torch its fastest kernels. Variables the user set are kept."""
    if not kernels_capped(environ, machine):
        return
    for name, value in AVX2_CAP.items():
        environ.setdefault(name, value)
    torch = sys.modules.get("torch")
    if torch is not None and environ is os.environ and environ["ATEN_CPU_CAPABILITY"] == "avx2" \
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        warnings.warn(f"{SETTING}=avx2, but torch computed before helpers was imported, so "
                      "this process uses its AVX-512 kernels. Import helpers first.",
                      stacklevel=2)


def _cpuinfo(cpuinfo: str | Path) -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if not line.strip():
                break  # the end of the first processor's block
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), " ".join(value.split()))
    return fields


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """The processor's model name (``AMD EPYC 9B14``, ``Intel(R) Xeon(R) ...``), as the
    operating system reports it; what else to name when bits differ between machines."""
    return _cpuinfo(cpuinfo).get("model name") or platform.processor() or platform.machine() \
        or "unknown CPU"


#: The instruction sets that change which kernels torch can choose, by their cpuinfo flag.
_INSTRUCTION_SETS = {"avx2": "AVX2", "avx512f": "AVX-512", "amx_tile": "AMX"}


def describe_cpu_kind(cpuinfo: str | Path = CPUINFO) -> str:
    """The processor's kind, finer than its model name (a virtual machine may report only
    ``AMD EPYC``): vendor, family and model numbers and the instruction sets torch's kernels
    use, e.g. ``AuthenticAMD family 25 model 1; AVX2``."""
    fields = _cpuinfo(cpuinfo)
    if "vendor_id" not in fields:
        return platform.machine() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    sets = [name for flag, name in _INSTRUCTION_SETS.items() if flag in flags]
    return (f"{fields['vendor_id']} family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}; {', '.join(sets) or 'no AVX2'}")
