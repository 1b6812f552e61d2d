"""Device names are checked before work starts, with the valid choices in the message; freed
CPU memory is kept for reuse while the kit trains or predicts, and only then."""

from __future__ import annotations

import pytest
import torch

from helpers import train
from helpers.config import TrainConfig
from helpers.system import device
from helpers.system.device import _glibc_mallopt, autocast, resolve_device, reusing_freed_memory


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
    """Minor page faults of one forward and backward step of a convolution whose maps are
    48 MiB each: above the 32 MiB up to which glibc's mmap threshold adapts on its own."""
    import resource  # POSIX only; the test using it runs on glibc only

    conv = torch.nn.Conv2d(16, 16, 3, padding=1)
    x = torch.randn(12, 16, 256, 256)
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
    assert min(outside) > 0  # each step maps its activations afresh
    assert min(inside) * 2 < min(outside)


def test_glibc_is_set_once_and_handed_back_by_the_outermost_exit(monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(device, "_glibc_mallopt", lambda: lambda *call: calls.append(call))
    trims: list[bool] = []
    monkeypatch.setattr(device, "_give_back_freed_memory", lambda: trims.append(True))
    with reusing_freed_memory(torch.device("cpu")):
        assert calls == [(-1, 1 << 30), (-4, 0)]  # trim threshold 1 GiB, no mmap
        with reusing_freed_memory(torch.device("cpu")):
            pass
        assert len(calls) == 2 and not trims  # the inner exit leaves them on
    # mmap back on at the thresholds glibc adapts to, and the free pages given back
    assert calls[2:] == [(-3, 32 << 20), (-1, 64 << 20), (-4, 65536)] and trims == [True]


def test_an_error_inside_still_hands_glibc_back(monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(device, "_glibc_mallopt", lambda: lambda *call: calls.append(call))
    monkeypatch.setattr(device, "_give_back_freed_memory", lambda: None)
    with pytest.raises(KeyboardInterrupt), reusing_freed_memory(torch.device("cpu")):
        raise KeyboardInterrupt
    assert calls[-1] == (-4, 65536)
    with reusing_freed_memory(torch.device("cpu")):  # and the depth starts again at 0
        assert calls[-1] == (-4, 0)


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


@pytest.mark.parametrize(("capability", "dtype", "described"), [
    ((7, 5), torch.float16, "float16 autocast, loss scaling"),  # a T4 (Colab's free GPU)
    ((7, 0), torch.float16, "float16 autocast, loss scaling"),  # a V100
    ((8, 0), torch.bfloat16, "bfloat16 autocast"),  # an A100
    ((9, 0), torch.bfloat16, "bfloat16 autocast"),  # an H100
])
def test_bfloat16_only_where_the_gpu_computes_it_natively(capability, dtype, described,
                                                          monkeypatch) -> None:
    # torch.cuda.is_bf16_supported() says True on a T4 (emulated): the capability decides
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    gpu = torch.device("cuda")
    assert device.autocast_dtype(gpu) == dtype
    assert device.describe_precision(gpu) == described
    assert device.autocast_dtype(gpu, enabled=False) is None


def test_the_scaler_is_on_exactly_for_float16(monkeypatch) -> None:
    config = TrainConfig(epochs=1, batch_size=2, freeze_encoder=True, decoder_lr=1e-2)
    made = []
    monkeypatch.setattr(train, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(train.torch.amp, "GradScaler",
                        lambda kind, enabled: made.append((kind, enabled)))
    for capability, on in [((7, 5), True), ((8, 6), False)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        train.make_scaler(config)
        assert made[-1] == ("cuda", on)


def test_the_cpu_trains_in_float32_and_its_record_says_so() -> None:
    cpu = torch.device("cpu")
    assert device.autocast_dtype(cpu) is None
    assert device.describe_machine(cpu)["precision"] == "float32"


def test_a_cpu_runs_record_names_the_cpus_kind(monkeypatch) -> None:
    monkeypatch.setattr(device, "describe_cpu_kind", lambda: "GenuineIntel family 6 model 143; "
                                                             "AVX2, AVX-512, AMX")
    machine = device.describe_machine(torch.device("cpu"))
    assert machine["cpu"] == "GenuineIntel family 6 model 143; AVX2, AVX-512, AMX"
    assert machine["device"].startswith("cpu: ") and " kernels, " in machine["device"]


@pytest.mark.parametrize(("forced", "dtype"), [("float16", torch.float16),
                                               ("bfloat16", torch.bfloat16),
                                               ("float32", None)])
def test_lesionkit_precision_chooses_the_precision_on_any_device(forced, dtype,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_PRECISION", forced)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))  # an H100
    for where in (torch.device("cpu"), torch.device("cuda")):
        assert device.autocast_dtype(where) == dtype
        assert device.autocast_dtype(where, enabled=False) is None  # amp: false still wins
    with autocast(torch.device("cpu")):  # autocast on the CPU itself, at that precision
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == (dtype or torch.float32)


def test_a_forced_float16_turns_the_cpu_scaler_on_and_is_recorded(monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_PRECISION", "float16")
    config = TrainConfig(epochs=1, batch_size=2, freeze_encoder=True, decoder_lr=1e-2,
                         device="cpu")
    assert train.make_scaler(config).is_enabled()
    cpu = torch.device("cpu")
    assert device.describe_machine(cpu)["precision"] == "float16 autocast, loss scaling"
    monkeypatch.setenv("LESIONKIT_PRECISION", "auto")
    assert not train.make_scaler(config).is_enabled()


@pytest.mark.parametrize("value", ["fp16", "FLOAT16", "half"])
def test_an_unknown_precision_is_refused_naming_the_variable(value, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_PRECISION", value)
    with pytest.raises(ValueError, match="LESIONKIT_PRECISION=.* is not one of auto, float16, "
                                         "bfloat16, float32"):
        device.autocast_dtype(torch.device("cpu"))
