"""Device names are checked before work starts, with the valid choices in the message."""

from __future__ import annotations

import pytest
import torch

from helpers.device import autocast, resolve_device


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
