"""torch keeps its fastest CPU kernels unless LESIONKIT_CPU_KERNELS=avx2 caps them at AVX2 on
x86-64; a user's own settings are kept; a bad value is named; the processor's kind is read
from /proc/cpuinfo for the run folder and the report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.system import device
from helpers.system.kernels import (
    AVX2_CAP,
    SETTING,
    cap_cpu_kernels,
    cpu_model,
    describe_cpu_kind,
    kernels_capped,
)


def test_by_default_torch_keeps_its_own_kernels() -> None:
    environ: dict[str, str] = {}
    cap_cpu_kernels(environ, machine="x86_64")
    assert environ == {}
    assert not kernels_capped(environ, machine="x86_64")


def test_avx2_caps_both_of_torchs_settings_on_x86_64_only() -> None:
    environ = {SETTING: " AVX2 "}
    cap_cpu_kernels(environ, machine="AMD64")
    assert environ == {SETTING: " AVX2 ", **AVX2_CAP}
    assert kernels_capped(environ, machine="AMD64")
    arm = {SETTING: "avx2"}
    cap_cpu_kernels(arm, machine="aarch64")
    assert arm == {SETTING: "avx2"}
    assert not kernels_capped(arm, machine="aarch64")


def test_a_users_own_setting_is_kept() -> None:
    environ = {SETTING: "avx2", "ATEN_CPU_CAPABILITY": "default"}
    cap_cpu_kernels(environ, machine="x86_64")
    assert environ == {SETTING: "avx2", "ATEN_CPU_CAPABILITY": "default",
                       "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_an_unknown_choice_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"LESIONKIT_CPU_KERNELS='avx512': use native or avx2"):
        cap_cpu_kernels({SETTING: "avx512"}, machine="x86_64")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python with ``env`` and none of the kernel settings of this one."""
    environ = {k: v for k, v in os.environ.items() if k not in (*AVX2_CAP, SETTING)}
    return subprocess.run([sys.executable, "-c", code], env={**environ, **env}, check=True,
                          capture_output=True, text=True, timeout=120)


def _capability(imports: str = "import helpers, torch", **env: str) -> str:
    return _run(f"{imports}; print(torch.backends.cpu.get_cpu_capability())",
                **env).stdout.strip()


X86_64 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                            reason="the cap applies to x86-64 CPUs only")


def test_importing_helpers_leaves_torch_the_cpus_fastest_kernels() -> None:
    assert _capability() == _capability("import torch")


@X86_64
def test_the_avx2_setting_gives_torch_avx2_kernels() -> None:
    native = _capability("import torch")
    capped = _capability(**{SETTING: "avx2"})
    assert capped == ("AVX2" if native in ("AVX2", "AVX512") else native)


@X86_64
@pytest.mark.parametrize("imports", ["import helpers, torch", "import torch, helpers"])
def test_capped_convolutions_run_avx2_code_whichever_is_imported_first(imports: str) -> None:
    code = (f"{imports}\nx = torch.randn(2, 8, 16, 16)\ntorch.nn.Conv2d(8, 8, 3)(x)\n"
            "print('ATen', torch.backends.cpu.get_cpu_capability())")
    done = _run(code, ONEDNN_VERBOSE="1", **{SETTING: "avx2"})
    isa = [line for line in done.stdout.splitlines() if ",info,cpu,isa:" in line]
    assert isa and "AVX-512" not in isa[0]  # oneDNN's own report of the code it runs
    assert "ATen AVX512" not in done.stdout
    assert "Warning" not in done.stderr


INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: SomethingElse
model name\t: not the first processor
"""
AMD_VM = """processor : 0
vendor_id : AuthenticAMD
cpu family : 25
model : 1
model name : AMD EPYC
flags : fpu sse2 avx avx2 fma
"""


def test_the_cpu_kind_names_vendor_family_model_and_instruction_sets(tmp_path: Path) -> None:
    (tmp_path / "intel").write_text(INTEL)
    (tmp_path / "amd").write_text(AMD_VM)
    assert describe_cpu_kind(tmp_path / "intel") == "GenuineIntel family 6 model 143; AVX2, " \
                                                    "AVX-512, AMX"
    assert cpu_model(tmp_path / "intel") == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert describe_cpu_kind(tmp_path / "amd") == "AuthenticAMD family 25 model 1; AVX2"
    assert cpu_model(tmp_path / "amd") == "AMD EPYC"


def test_without_cpuinfo_the_cpu_is_named_by_its_architecture(tmp_path: Path) -> None:
    missing = tmp_path / "no-cpuinfo"
    assert describe_cpu_kind(missing) == (platform.machine() or "unknown CPU")
    assert cpu_model(missing) in (platform.processor(), platform.machine(), "unknown CPU")


def test_the_cpu_description_says_when_the_kernels_are_capped(monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_model", lambda: "Some CPU")
    monkeypatch.setattr(device, "kernels_capped", lambda: False)
    assert device.describe_cpu().startswith("Some CPU (") and "capped" not in \
        device.describe_cpu()
    monkeypatch.setattr(device, "kernels_capped", lambda: True)
    assert ", capped, " in device.describe_cpu()
