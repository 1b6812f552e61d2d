"""On x86-64 the kit caps torch's CPU kernels at AVX2 (the same bits on every such machine),
unless LESIONKIT_CPU_KERNELS=native; a user's own settings are kept; a bad value is named."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from helpers.system.kernels import AVX2_CAP, SETTING, cap_cpu_kernels


def test_on_x86_64_both_of_torchs_settings_are_capped_at_avx2() -> None:
    environ: dict[str, str] = {}
    cap_cpu_kernels(environ, machine="x86_64")
    assert environ == AVX2_CAP


def test_native_and_other_processors_leave_the_environment_alone() -> None:
    native = {SETTING: "Native"}
    cap_cpu_kernels(native, machine="x86_64")
    assert native == {SETTING: "Native"}
    arm: dict[str, str] = {}
    cap_cpu_kernels(arm, machine="aarch64")
    assert arm == {}


def test_a_users_own_setting_is_kept() -> None:
    environ = {"ATEN_CPU_CAPABILITY": "default"}
    cap_cpu_kernels(environ, machine="AMD64")
    assert environ == {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_an_unknown_choice_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"LESIONKIT_CPU_KERNELS='avx512': use avx2 or native"):
        cap_cpu_kernels({SETTING: "avx512"}, machine="x86_64")


def _capability(**env: str) -> str:
    """torch's CPU capability in a fresh process that imports helpers first."""
    environ = {k: v for k, v in os.environ.items() if k not in (*AVX2_CAP, SETTING)}
    code = "import helpers, torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env={**environ, **env}, check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip()


X86_64 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                            reason="the cap applies to x86-64 CPUs only")


@X86_64
def test_importing_helpers_gives_torch_the_avx2_kernels() -> None:
    native = _capability(**{SETTING: "native"})
    capped = _capability()
    assert capped == ("AVX2" if native in ("AVX2", "AVX512") else native)


@X86_64
@pytest.mark.parametrize("imports", ["import helpers, torch", "import torch, helpers"])
def test_the_convolutions_run_avx2_code_whichever_is_imported_first(imports: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in (*AVX2_CAP, SETTING)}
    code = (f"{imports}\nx = torch.randn(2, 8, 16, 16)\ntorch.nn.Conv2d(8, 8, 3)(x)\n"
            "print('ATen', torch.backends.cpu.get_cpu_capability())")
    done = subprocess.run([sys.executable, "-c", code], env={**environ, "ONEDNN_VERBOSE": "1"},
                          check=True, capture_output=True, text=True, timeout=120)
    isa = [line for line in done.stdout.splitlines() if ",info,cpu,isa:" in line]
    assert isa and "AVX-512" not in isa[0]  # oneDNN's own report of the code it runs
    assert "ATen AVX512" not in done.stdout
    assert "Warning" not in done.stderr

