"""Device names are checked before work starts, with the valid choices in the message; freed
CPU memory is kept for reuse while the kit trains or predicts, and only then."""

from __future__ import annotations

import resource

import pytest
import torch

from helpers import device
from helpers.device import _glibc_mallopt, autocast, resolve_device, reusing_freed_memory


def test_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:x", "", "tpu"])
def test_a_typo_lists_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match="is not one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so() -> None:
    with pytest.raises(ValueError, match="torch sees no CUDA GPU on this machine; use 'auto'"):
        resolve_device("cuda")


def test_no_autocast_on_cpu() -> None:
    with autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32



def _faults_per_step(steps: int = 3) -> int:
    """Minor page faults of one forward and backward step of a convolution (16 MiB maps)."""
    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(8, 16, 128, 128)
    conv(x).square().mean().backward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        conv(x).square().mean().backward()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // steps


@pytest.mark.skipif(_glibc_mallopt() is None, reason="glibc's malloc only (Linux)")
def test_freed_memory_is_reused_inside_so_steps_stop_faulting_in_fresh_pages() -> None:
    outside, inside = [], []
    for _ in range(3):
        outside.append(_faults_per_step())
        with reusing_freed_memory(torch.device("cpu")) as kept:
            assert kept
            inside.append(_faults_per_step())
    assert min(outside) > 500  # each step maps its 16 MiB activations afresh (4,096 pages)
    assert min(inside) * 2 < min(outside)


def test_glibc_settings_are_set_once_and_restored_by_the_outermost_exit(monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(device, "_glibc_mallopt", lambda: lambda *call: calls.append(call))
    with reusing_freed_memory(torch.device("cpu")):
        assert calls == [(-1, 1 << 30), (-4, 0)]  # trim threshold 1 GiB, no mmap
        with reusing_freed_memory(torch.device("cpu")):
            pass
        assert len(calls) == 2  # the inner exit leaves them on
    assert calls[2:] == [(-1, 128 * 1024), (-4, 65536)]  # glibc's defaults


def test_freed_memory_is_left_alone_off_the_cpu_when_asked_or_without_glibc(monkeypatch) -> None:
    with reusing_freed_memory(torch.device("meta")) as kept:
        assert not kept
    monkeypatch.setenv("LESIONKIT_KEEP_FREED_MEMORY", "0")  # the user's choice
    with reusing_freed_memory(torch.device("cpu")) as kept:
        assert not kept
    monkeypatch.delenv("LESIONKIT_KEEP_FREED_MEMORY")
    monkeypatch.setattr(device, "_glibc_mallopt", lambda: None)
    with reusing_freed_memory(torch.device("cpu")) as kept:
        assert not kept
