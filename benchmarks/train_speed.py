"""Speed benchmark: the kit's training loop against plain loops, side by side in one run.

    python benchmarks/train_speed.py --data-root DATA --json reports/benchmarks/cpu.json

Measured on the same images and machine, for frozen and fine-tuned training at each size,
each measured epoch in a fresh process after a warm-up epoch there, the contenders taking
turns (so none inherits another's memory state, and a drift in the machine's speed hits all):

* ``kit``: ``helpers.train.fit``'s epoch (uint8 cache, channels_last, and for a
  frozen encoder the features computed once, then decoder-only epochs);
* ``reference``: a plain loop over the same model as report A would write it: the whole set
  loaded once as float32 NCHW tensors, a DataLoader over a TensorDataset, fp32, the full model
  run every step (frozen = encoder parameters without gradients);
* ``smp``: ``segmentation_models_pytorch.Unet("mobilenet_v2")`` in that same plain loop, the
  model a user would pick instead.

With ``--seed-a``, also seed A's own loop (:mod:`seed_a`, as report A's author wrote it)
against the kit on the whole training and test sets at 128², batch 45: per-epoch ratios
(training plus the per-epoch evaluation on the test set, as report A monitors it), the set-up
(decoding both splits) and the whole report-A run (set-up + 50 epochs of each model). Each
of these epochs runs in a fresh process, as in a notebook kernel or a script of its own.

With ``--limits``, how far each is from the machine's limit: the FLOPs of one training step
(``torch.utils.flop_counter``), the machine's fp32 matmul rate measured in the same run, each
contender's achieved rate as a fraction of it, and a ``torch.profiler`` table of where a
fine-tuned step spends its time.

With ``--compile``, the kit's epoch with ``compile: true`` (``torch.compile``) against
without, at the first size: the compile time, the per-epoch speed-up and the speed-up of a
whole 50-epoch run with the compile time counted.

With ``--malloc``, the kit's epoch with freed memory kept for reuse (as ``fit`` runs it,
:func:`helpers.system.device.reusing_freed_memory`) against glibc's malloc left alone, and the peak
memory of each in a fine-tuned epoch at 256².

With ``--scale 1000,5000,10000``, :mod:`data_scale` (decode rate, cache size and peak memory
of a training epoch as the data set grows), stored as ``scale``.

The kit runs in both of its kernel modes (:mod:`helpers.system.kernels`): ``kit`` as it ships,
with the fastest kernels the CPU has, and ``kit_avx2`` under ``LESIONKIT_CPU_KERNELS=avx2``
(AVX2 kernels on x86-64; ``cap_costs`` is its epoch time over the shipped kit's). The other
contenders run with the CPU's fastest kernels, as their users run them. Each measured epoch's
process reports the kernels it used (``cpu_kernels`` in the results), and every section
records the machine it was measured on (``machine``: the CPU's model name and kind, threads,
torch), so that sections measured on different machines are never mixed up.

Also: the data path's share (one kit epoch's wall time over the pure model compute on
ready-made batches), the kit's peak memory, evaluation images/s, cache build and reload time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from helpers.batches import TensorSet, normalise
from helpers.config import TrainConfig
from helpers.data import SegmentationSet
from helpers.decode import load_split
from helpers.evaluate import predict
from helpers.isic2016 import isic2016_split
from helpers.model import MobileNetV2UNet, build_model
from helpers.paths import SYNTHETIC_ROOT, public_path, resolve_path
from helpers.synthetic import write_synthetic_isic2016
from helpers.system.atomic import write_text
from helpers.system.device import reusing_freed_memory
from helpers.system.kernels import AVX2_CAP, SETTING, cpu_model, describe_cpu_kind
from helpers.train import (
    encoder_features,
    make_optimizer,
    make_scaler,
    segmentation_loss,
    train_one_epoch,
    validate,
)

#: The sections of the results besides the per-epoch rows (each from its own option).
SECTIONS = ("limits", "seed_a", "compile", "malloc", "scale", "measured_again")
#: The contender that is the kit with its CPU kernels capped at AVX2; all others (the kit as
#: it ships included) compute with the CPU's fastest kernels.
CAPPED = "kit_avx2"


def contender_env(contender: str) -> dict[str, str]:
    """The environment of a measured epoch's process: the CPU's fastest kernels, or for
    ``kit_avx2`` the kit's AVX2 cap (whatever kernel settings this process has)."""
    environ = {name: value for name, value in os.environ.items()
               if name not in (*AVX2_CAP, SETTING)}
    return {**environ, SETTING: "avx2" if contender == CAPPED else "native"}


def this_machine() -> dict:
    """The machine a section is measured on: the CPU's model name and kind, threads, torch."""
    return {"cpu_model": cpu_model(), "cpu": describe_cpu_kind(),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def kernels_used() -> str:
    """The CPU kernels this process computes with, e.g. ``AVX2`` or ``AVX512``."""
    return torch.backends.cpu.get_cpu_capability()


def mode_config(mode: str, batch_size: int) -> TrainConfig:
    """Report A's settings for one model on the CPU: ``mode`` is "frozen" or "fine-tuned"."""
    frozen = mode == "frozen"
    return TrainConfig(epochs=1, batch_size=batch_size, freeze_encoder=frozen,
                       encoder_lr=0.0 if frozen else 1e-4, decoder_lr=1e-2, device="cpu")


def _best_of(repeats: int, work: Callable[[], None]) -> float:
    """Seconds of the fastest of ``repeats`` runs (after one warm-up run)."""
    return _interleaved(repeats, {"work": work})["work"]


def _interleaved(repeats: int, works: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Fastest of ``repeats`` runs of each, taking turns (so drift in the machine's speed
    affects every contender alike), after one warm-up run of each."""
    for work in works.values():
        work()
    best = dict.fromkeys(works, float("inf"))
    for _ in range(repeats):
        for name, work in works.items():
            began = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - began)
    return best


def as_fit(work: Callable[[], None]) -> Callable[[], None]:
    """``work`` run the way :func:`helpers.train.fit` runs its epochs on a Linux CPU: with
    freed memory kept for reuse. Each call enters and leaves it, so the first step of each
    measured epoch still takes fresh pages (``fit`` keeps it for the whole run)."""
    def run() -> None:
        with reusing_freed_memory(torch.device("cpu")):
            work()
    return run


def plain_loop(model: nn.Module, data: SegmentationSet, batch_size: int, lr: float,
               frozen_encoder: nn.Module | None) -> Callable[[], None]:
    """One epoch of the textbook loop: float tensors loaded once, DataLoader, fp32 NCHW."""
    images = normalise(torch.from_numpy(data.images).permute(0, 3, 1, 2)).contiguous()
    masks = torch.from_numpy(data.masks).unsqueeze(1).float()
    loader = DataLoader(TensorDataset(images, masks), batch_size=batch_size, shuffle=True)
    if frozen_encoder is not None:
        frozen_encoder.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)

    def epoch() -> None:
        model.train()
        for x, y in loader:
            loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


def kit_loop(data: SegmentationSet, config: TrainConfig) -> tuple[Callable[[], None], dict]:
    """One epoch of the kit's loop; also returns the one-off feature time and pure compute."""
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    tensors = TensorSet(data)
    extra: dict[str, float] = {}
    features = None
    if config.freeze_encoder:
        began = time.perf_counter()
        features = encoder_features(model, tensors, config)
        extra["features_once_s"] = time.perf_counter() - began
    scaler = make_scaler(config)
    if config.compile:  # as fit does it
        (model.decoder if features is not None else model).compile()

    @as_fit
    def epoch() -> None:
        train_one_epoch(model, tensors, optimizer, config, 1, features, scaler, progress=False)

    # Pure compute: the same steps on batches prepared beforehand (no indexing, no convert).
    batches = [tensors.batch(index, "cpu", config.channels_last) + (index,)
               for index in torch.arange(len(tensors)).split(config.batch_size)]

    @as_fit
    def compute() -> None:
        model.train()
        for images, masks, index in batches:
            if features is None:
                logits = model(images)
            else:
                logits = model.decoder([f[index] for f in features], images)
            loss = segmentation_loss(logits, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    extra["compute"] = compute
    return epoch, extra


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate in GFLOP/s (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = _best_of(repeats, lambda: torch.mm(a, b))
    return 2 * size ** 3 / seconds / 1e9


def _conv_backward_flop(grad_out_shape: list[int], x_shape: list[int], w_shape: list[int],
                        _bias: object, _stride: object, _padding: object, _dilation: object,
                        transposed: bool, _output_padding: object, _groups: int,
                        output_mask: list[bool], out_shape: object = None, **kwargs: object
                        ) -> int:
    """A convolution's backward: the input gradient and the weight gradient each take as
    many multiply-adds as the forward. (torch's own formula ignores the groups in the weight
    gradient, which counts a depthwise convolution's ``channels`` times over.)"""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter with grouped convolutions' backward counted correctly."""
    return FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten.convolution_backward: _conv_backward_flop})


def step_flops(config: TrainConfig, size: int, batch_size: int) -> int:
    """FLOPs of one training step (forward and backward) as ``fit`` runs it: the decoder
    alone on cached features when the encoder is frozen, else the whole model."""
    model = build_model(config).train()
    images = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    masks = torch.rand(batch_size, 1, size, size).round()
    features = [f.detach() for f in model.encoder(images)] if config.freeze_encoder else None
    with flop_counter() as counter:
        logits = model.decoder(features, images) if features is not None else model(images)
        segmentation_loss(logits, masks).backward()
    return counter.get_total_flops()


def fine_tuned_profile(size: int, batch_size: int, rows: int = 12) -> list[dict]:
    """Where a fine-tuned training step spends its time: the top operators by self CPU time."""
    config = mode_config("fine-tuned", batch_size)
    model = build_model(config).train()
    optimizer = make_optimizer(model, config)
    images = torch.randn(batch_size, 3, size, size).contiguous(memory_format=torch.channels_last)
    masks = torch.rand(batch_size, 1, size, size).round()

    def step() -> None:
        loss = segmentation_loss(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with reusing_freed_memory(torch.device("cpu")):  # as fit trains
        step()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"operator": e.key, "self_ms": e.self_cpu_time_total / 1000,
             "share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:rows]]


def limits(results: dict, batch_size: int) -> dict:
    """FLOPs per step, the machine's matmul rate, each contender's fraction of it."""
    rate = matmul_rate()
    section: dict = {"matmul_gflop_s": rate, "rows": []}
    for row in results["rows"]:
        frozen = row["mode"] == "frozen"
        config = mode_config(row["mode"], batch_size)
        per_image = step_flops(config, row["size"], batch_size) / batch_size
        # the plain loop runs the encoder forward every step even when it is frozen
        encoder_forward = 0.0
        if frozen:
            model = build_model(config)
            with flop_counter() as counter, torch.no_grad():
                model.encoder(torch.randn(batch_size, 3, row["size"], row["size"]))
            encoder_forward = counter.get_total_flops() / batch_size
        reference_flops = per_image + encoder_forward
        section["rows"].append({
            "size": row["size"], "mode": row["mode"], "kit_gflop_per_image": per_image / 1e9,
            "kit_fraction": per_image * row["kit_img_s"] / 1e9 / rate,
            "reference_fraction": reference_flops * row["reference_img_s"] / 1e9 / rate})
    size = results["rows"][0]["size"]
    section["profile_fine_tuned"] = {"size": size, "batch_size": batch_size,
                                     "top": fine_tuned_profile(size, batch_size)}
    return section


def one_epoch_in_this_process(contender: str, mode: str, cache: Path, tensors: Path | None,
                              data_root: Path, batch_size: int = 45, size: int = 128) -> dict:
    """A warm-up epoch and a timed one of ``contender`` ("kit", "kit_avx2" or "seed_a"), as a fresh
    notebook kernel or script runs them: the kit as ``fit`` does (freed memory kept for reuse
    over both epochs unless ``LESIONKIT_KEEP_FREED_MEMORY=0``, frozen features computed
    once), seed A (from its ``tensors``) as its author wrote it. An epoch trains on the
    training split and evaluates the test split."""
    frozen = mode == "frozen"
    once = 0.0
    if contender == "seed_a":
        from seed_a import seed_a_epoch

        if tensors is None:
            raise ValueError("seed A's epoch needs --tensors")
        theirs = torch.load(tensors, weights_only=True)
        epoch = seed_a_epoch(theirs["train"], theirs["test"], frozen, batch_size)
        keeping: AbstractContextManager = nullcontext()  # glibc's malloc left alone
    else:
        train = TensorSet(load_split(isic2016_split(data_root, "train"), size, cache, False))
        test = TensorSet(load_split(isic2016_split(data_root, "test"), size, cache, False))
        config = mode_config(mode, batch_size)
        model = build_model(config)
        optimizer = make_optimizer(model, config)
        scaler = make_scaler(config)
        keeping = reusing_freed_memory(torch.device("cpu"))
        features = test_features = None

        def epoch() -> None:
            train_one_epoch(model, train, optimizer, config, 1, features, scaler, False)
            validate(model, test, config, test_features)
    with keeping:
        if contender != "seed_a" and frozen:
            began = time.perf_counter()
            features = encoder_features(model, train, config)
            test_features = encoder_features(model, test, config)
            once = time.perf_counter() - began
        epoch()  # warm-up
        began = time.perf_counter()
        epoch()
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "features_once_s": once, "cpu_kernels": kernels_used()}


def versus_seed_a(data_root: Path, repeats: int, batch_size: int = 45, size: int = 128,
                  epochs: int = 50) -> dict:
    """The kit against seed A's loop on the whole data set (see the module docstring).

    Each measured epoch runs in a fresh process of its own, the two contenders taking turns:
    seed A's loop spends much of its time on fresh memory pages, so how fast it runs depends
    on what the process did before, and a user runs it in a fresh notebook kernel."""
    from data_scale import json_from_child
    from seed_a import seed_a_data

    began = time.perf_counter()
    theirs = seed_a_data(data_root, size)
    seed_setup = time.perf_counter() - began
    section: dict = {"machine": this_machine(), "size": size, "batch_size": batch_size,
                     "epochs": epochs,
                     "images": {"train": len(theirs["train"][0]),
                                "test": len(theirs["test"][0])}, "rows": [],
                     "processes": "each measured epoch in a fresh process, after a warm-up "
                                  "epoch there"}
    with tempfile.TemporaryDirectory() as folder:
        cache, tensors = Path(folder) / "cache", Path(folder) / "seed_a.pt"
        began = time.perf_counter()
        load_split(isic2016_split(data_root, "train"), size, cache, False)
        load_split(isic2016_split(data_root, "test"), size, cache, False)
        kit_setup = time.perf_counter() - began
        torch.save(theirs, tensors)
        section["setup_s"] = {"seed_a": seed_setup, "kit": kit_setup}
        whole = {"seed_a": seed_setup, "kit": kit_setup, CAPPED: kit_setup}
        for mode in ("frozen", "fine-tuned"):
            best = {name: {"seconds": float("inf")} for name in ("kit", CAPPED, "seed_a")}
            for _ in range(repeats):
                for contender in best:
                    result = json_from_child(
                        [__file__, "--one-epoch", contender, mode, "--data-root",
                         str(data_root), "--cache", str(cache), "--tensors", str(tensors),
                         "--batch-size", str(batch_size)], env=contender_env(contender))
                    if result["seconds"] < best[contender]["seconds"]:
                        best[contender] = result
            kit, capped = best["kit"]["seconds"], best[CAPPED]["seconds"]
            seed = best["seed_a"]["seconds"]
            row = {"mode": mode, "kit_epoch_s": kit, "kit_avx2_epoch_s": capped,
                   "seed_a_epoch_s": seed, "kit_vs_seed_a": seed / kit,
                   "kit_avx2_vs_seed_a": seed / capped, "cap_costs": capped / kit,
                   "features_once_s": best["kit"]["features_once_s"],
                   "cpu_kernels": {name: best[name]["cpu_kernels"] for name in best}}
            section["rows"].append(row)
            print(f"seed A {mode:<10} epoch {seed:6.2f} s | kit {kit:6.2f} s"
                  f" ({row['kit_vs_seed_a']:.2f}x) | kit, AVX2 cap {capped:6.2f} s"
                  f" ({row['kit_avx2_vs_seed_a']:.2f}x)", flush=True)
            whole["seed_a"] += epochs * seed
            for name in ("kit", CAPPED):
                whole[name] += best[name]["features_once_s"] + epochs * best[name]["seconds"]
    section["whole_run_s"] = whole
    section["whole_run_kit_vs_seed_a"] = whole["seed_a"] / whole["kit"]
    section["whole_run_kit_avx2_vs_seed_a"] = whole["seed_a"] / whole[CAPPED]
    return section


def versus_compile(data_root: Path, size: int, n_images: int, repeats: int, batch_size: int,
                   epochs: int = 50) -> dict:
    """The kit's epoch with ``compile: true`` against without, and what compiling costs.

    The compile time is the first compiled epoch's time less a compiled epoch's; the whole-run
    figures count it once, over ``epochs`` epochs.
    """
    # Compiled code is cached on disk between runs: start from an empty cache, as on a first
    # run, then compile the same model again with the cache filled, as on every later run.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    data = load_split(isic2016_split(data_root, "train"), size, progress=False)
    data = data.subset(range(min(n_images, len(data))))
    section: dict = {"size": size, "images": len(data), "epochs": epochs, "rows": []}
    for mode in ("frozen", "fine-tuned"):
        config = mode_config(mode, batch_size)
        eager, _ = kit_loop(data, config)
        firsts = {}
        for cache in ("cold", "warm"):
            compiled, _ = kit_loop(data, dataclasses.replace(config, compile=True))
            began = time.perf_counter()
            compiled()
            firsts[cache] = time.perf_counter() - began
        seconds = _interleaved(repeats, {"eager": eager, "compiled": compiled})
        row = {"mode": mode, "eager_epoch_s": seconds["eager"],
               "compiled_epoch_s": seconds["compiled"],
               "compile_s": firsts["cold"] - seconds["compiled"],
               "compile_warm_cache_s": firsts["warm"] - seconds["compiled"],
               "epoch_speedup": seconds["eager"] / seconds["compiled"]}
        for cache, key in (("cold", "whole_run_speedup"), ("warm", "whole_run_speedup_warm")):
            row[key] = epochs * seconds["eager"] / (firsts[cache] + (epochs - 1)
                                                    * seconds["compiled"])
        section["rows"].append(row)
        print(f"compile {mode:<10} epoch {seconds['eager']:.2f} s -> {seconds['compiled']:.2f} s"
              f" ({row['epoch_speedup']:.2f}x) after {row['compile_s']:.0f} s of compiling "
              f"({row['compile_warm_cache_s']:.0f} s with a warm cache); {epochs} epochs: "
              f"{row['whole_run_speedup']:.2f}x ({row['whole_run_speedup_warm']:.2f}x)",
              flush=True)
    return section


def versus_glibc_malloc(data_root: Path, sizes: tuple[int, ...], repeats: int,
                        batch_size: int, scale_images: int = 1000) -> dict:
    """The kit's epoch (the whole training split, then the test split evaluated) with freed
    memory kept for reuse, as ``fit`` runs it, against the same epoch with glibc's malloc
    left as it is (``LESIONKIT_KEEP_FREED_MEMORY=0``). Each measured epoch runs in a fresh
    process after a warm-up epoch there, the two taking turns, so neither inherits the
    other's memory state. Then the peak memory of each, from a fine-tuned epoch at 256² of
    ``scale_images`` SYNTHETIC images in a process of its own."""
    from data_scale import epoch_with_and_without_kept_memory, json_from_child

    section: dict = {"batch_size": batch_size, "repeats": repeats, "rows": [],
                     "processes": "each measured epoch in a fresh process, after a warm-up "
                                  "epoch there"}
    with tempfile.TemporaryDirectory() as cache:
        for size in sizes:
            for split in ("train", "test"):
                data = load_split(isic2016_split(data_root, split), size, cache, False)
                section.setdefault("images", {})[split] = len(data)
            for mode in ("frozen", "fine-tuned"):
                best = {"kept": float("inf"), "glibc": float("inf")}
                for _ in range(repeats):
                    for name, keep in (("kept", "1"), ("glibc", "0")):
                        result = json_from_child(
                            [__file__, "--one-epoch", "kit", mode, "--data-root",
                             str(data_root), "--cache", cache, "--size", str(size),
                             "--batch-size", str(batch_size)],
                            env={**os.environ, "LESIONKIT_KEEP_FREED_MEMORY": keep})
                        best[name] = min(best[name], result["seconds"])
                row = {"size": size, "mode": mode, "kept_epoch_s": best["kept"],
                       "glibc_epoch_s": best["glibc"],
                       "speedup": best["glibc"] / best["kept"]}
                section["rows"].append(row)
                print(f"kept memory {size:>4} {mode:<10} {best['glibc']:.2f} s -> "
                      f"{best['kept']:.2f} s ({row['speedup']:.2f}x)", flush=True)
    if scale_images:
        section["memory"] = epoch_with_and_without_kept_memory(scale_images)
    return section


#: The per-epoch table's contenders, each measured in processes of its own.
CONTENDERS = ("kit", CAPPED, "compute", "reference", "smp")


def row_epoch_in_this_process(contender: str, mode: str, size: int, n_images: int,
                              batch_size: int, cache: Path, data_root: Path) -> dict:
    """A warm-up training epoch and a timed one of ``contender`` (one of ``CONTENDERS``) on
    the first ``n_images`` training images, as a fresh process runs them: the kit and its
    pure compute as ``fit`` runs them (freed memory kept for reuse over both epochs), the
    plain loops as a user's script would (glibc's malloc left alone)."""
    full = load_split(isic2016_split(data_root, "train"), size, cache, False)
    data = full.subset(range(min(n_images, len(full))))
    frozen = mode == "frozen"
    keeping: AbstractContextManager = nullcontext()
    extra: dict = {}
    if contender in ("kit", CAPPED, "compute"):
        kit_epoch, extra = kit_loop(data, mode_config(mode, batch_size))
        epoch = extra["compute"] if contender == "compute" else kit_epoch
        keeping = reusing_freed_memory(torch.device("cpu"))
    elif contender == "reference":
        torch.manual_seed(0)
        ours = MobileNetV2UNet(pretrained=True)
        epoch = plain_loop(ours, data, batch_size, 1e-2, ours.encoder if frozen else None)
    elif contender == "smp":
        import segmentation_models_pytorch as smp

        torch.manual_seed(0)
        theirs = smp.Unet("mobilenet_v2", encoder_weights=None, classes=1)
        epoch = plain_loop(theirs, data, batch_size, 1e-2, theirs.encoder if frozen else None)
    else:
        raise ValueError(f"contender must be one of {', '.join(CONTENDERS)}, not {contender!r}")
    with keeping:
        epoch()  # warm-up
        began = time.perf_counter()
        epoch()
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "images": len(data),
            "features_once_s": extra.get("features_once_s", 0.0),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cpu_kernels": kernels_used()}


def benchmark(data_root: Path, sizes: tuple[int, ...], n_images: int, repeats: int,
              batch_size: int) -> dict:
    """The per-epoch rows (each measured epoch in a fresh process, the contenders taking
    turns), the cache's build and reload times and the evaluation speed."""
    from data_scale import json_from_child

    results: dict = {"device": "cpu", **this_machine(),
                     "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                     "python": platform.python_version(),
                     "data_root": public_path(data_root), "images": n_images,
                     "batch_size": batch_size, "repeats": repeats,
                     "processes": "each measured epoch in a fresh process, after a warm-up "
                                  "epoch there", "rows": []}
    layout = isic2016_split(data_root, "train")
    for size in sizes:
        with tempfile.TemporaryDirectory() as cache:
            began = time.perf_counter()
            full = load_split(layout, size, cache_dir=cache, progress=False)
            build = time.perf_counter() - began
            began = time.perf_counter()
            load_split(layout, size, cache_dir=cache, progress=False)
            reload = time.perf_counter() - began
            results[f"cache_build_s_{size}"] = build
            results[f"cache_reload_s_{size}"] = reload
            results[f"cache_images_{size}"] = len(full)
            for mode in ("frozen", "fine-tuned"):
                best = {name: {"seconds": float("inf")} for name in CONTENDERS}
                for _ in range(repeats):
                    for name in CONTENDERS:
                        result = json_from_child(
                            [__file__, "--row-epoch", name, mode, "--data-root",
                             str(data_root), "--cache", cache, "--size", str(size),
                             "--images", str(n_images), "--batch-size", str(batch_size)],
                            env=contender_env(name))
                        if result["seconds"] < best[name]["seconds"]:
                            best[name] = result
                seconds = {name: best[name]["seconds"] for name in CONTENDERS}
                images = best["kit"]["images"]
                row = {"size": size, "mode": mode,
                       "kit_img_s": images / seconds["kit"],
                       "kit_avx2_img_s": images / seconds[CAPPED],
                       "cap_costs": seconds[CAPPED] / seconds["kit"],
                       "reference_img_s": images / seconds["reference"],
                       "smp_img_s": images / seconds["smp"],
                       "kit_vs_reference": seconds["reference"] / seconds["kit"],
                       "kit_vs_smp": seconds["smp"] / seconds["kit"],
                       "epoch_over_compute": seconds["kit"] / seconds["compute"],
                       "features_once_s": best["kit"]["features_once_s"],
                       "kit_peak_rss_mib": best["kit"]["peak_rss_mib"],
                       "cpu_kernels": {name: best[name]["cpu_kernels"] for name in CONTENDERS}}
                results["rows"].append(row)
                print(_format_row(row), flush=True)
        test = load_split(isic2016_split(data_root, "test"), size, progress=False)
        eval_config = TrainConfig(epochs=1, batch_size=batch_size, freeze_encoder=True,
                                  decoder_lr=1e-2, device="cpu")
        model = build_model(eval_config)
        evaluation = _best_of(repeats, lambda m=model, t=test, c=eval_config: predict(m, t, c))
        results[f"eval_img_s_{size}"] = len(test) / evaluation
    rows = {(r["size"], r["mode"]): r for r in results["rows"]}
    for size in sizes:
        results[f"frozen_vs_finetuned_{size}"] = (rows[(size, "frozen")]["kit_img_s"]
                                                  / rows[(size, "fine-tuned")]["kit_img_s"])
    return results


def keep_machine_of_sections(results: dict) -> None:
    """Before new rows replace the machine at the top of ``results``: give each section that
    records no machine of its own the one it was measured with (the top-level one)."""
    if "cpu_model" in results:
        old = {key: results[key] for key in ("cpu_model", "cpu", "threads", "torch")
               if key in results}
    else:  # results from before the benchmark recorded the CPU's model
        old = {"processor": results.get("processor", "unknown"),
               "threads": results.get("threads"), "torch": results.get("torch")}
    for name in SECTIONS:
        if isinstance(results.get(name), dict) and "machine" not in results[name]:
            results[name]["machine"] = old


def _format_row(row: dict) -> str:
    return (f"{row['size']:>4} {row['mode']:<10} kit {row['kit_img_s']:7.1f} img/s | "
            f"AVX2 cap costs {row['cap_costs']:.2f}x | "
            f"reference {row['reference_img_s']:6.1f} ({row['kit_vs_reference']:.2f}x) | "
            f"smp {row['smp_img_s']:6.1f} ({row['kit_vs_smp']:.2f}x) | "
            f"epoch/compute {row['epoch_over_compute']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None,
                        help="ISIC 2016 folder (default: the SYNTHETIC demo set)")
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--images", type=int, default=90, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=45)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--limits", action="store_true",
                        help="also FLOPs, the machine's matmul rate and a profile")
    parser.add_argument("--seed-a", action="store_true",
                        help="also seed A's own loop on the whole data set (minutes)")
    parser.add_argument("--compile", action="store_true",
                        help="also the kit with compile: true (minutes of compiling)")
    parser.add_argument("--malloc", action="store_true",
                        help="also the kit with freed memory kept (as fit runs) against "
                             "glibc's malloc left alone: time and peak memory (minutes)")
    parser.add_argument("--scale", default=None, metavar="COUNTS",
                        help="also benchmarks/data_scale.py for these image counts, e.g. "
                             "1000,5000,10000 (half an hour)")
    parser.add_argument("--scale-no-epoch", action="store_true",
                        help="scale: decoding and loading only; with --update the training "
                             "epochs already in the file are kept")
    parser.add_argument("--rows", action="store_true",
                        help="with --update: measure the per-epoch rows again (and --limits, "
                             "which depends on them)")
    parser.add_argument("--malloc-images", type=int, default=1000,
                        help="--malloc: SYNTHETIC images of its peak-memory epoch (0: none)")
    parser.add_argument("--update", action="store_true",
                        help="measure only the --rows, --seed-a, --compile, --malloc and "
                             "--scale sections asked for and replace them in the existing "
                             "--json file (noted there)")
    parser.add_argument("--one-epoch", nargs=2, metavar=("CONTENDER", "MODE"),
                        help=argparse.SUPPRESS)  # one seed-A-section epoch, in its process
    parser.add_argument("--row-epoch", nargs=2, metavar=("CONTENDER", "MODE"),
                        help=argparse.SUPPRESS)  # one per-epoch-table epoch, in its process
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--tensors", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_epoch:
        result = one_epoch_in_this_process(*args.one_epoch, Path(args.cache),
                                           Path(args.tensors) if args.tensors else None,
                                           Path(args.data_root), args.batch_size, args.size)
        print(json.dumps(result))
        return 0
    if args.row_epoch:
        result = row_epoch_in_this_process(*args.row_epoch, args.size, args.images,
                                           args.batch_size, Path(args.cache),
                                           Path(args.data_root))
        print(json.dumps(result))
        return 0
    if args.update and (not args.json or (args.limits and not args.rows)):
        parser.error("--update needs --json, and --limits needs --rows (it uses them)")
    root = resolve_path(args.data_root) if args.data_root else \
        write_synthetic_isic2016(SYNTHETIC_ROOT, n_train=80, n_test=30)
    sizes = tuple(int(size) for size in args.sizes.split(","))
    began = time.perf_counter()

    def save() -> None:  # after every section, so that an interrupted run keeps what it did
        if args.json:
            # the first run's wall time stays; an update's goes with its measured_again entry
            (results["measured_again"][-1] if args.update else results)["wall_s"] = \
                time.perf_counter() - began
            path = resolve_path(args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(results, indent=2) + "\n")

    if args.update:
        results = json.loads(resolve_path(args.json).read_text())
        sections = [name for name, asked in (
            ("rows", args.rows), ("limits", args.limits), ("seed_a", args.seed_a),
            ("compile", args.compile), ("malloc", args.malloc),
            ("scale (decoding and loading)" if args.scale_no_epoch else "scale", args.scale))
            if asked]
        results.setdefault("measured_again", []).append(
            {"sections": sections, "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             **this_machine(), "cpu_kernels": torch.backends.cpu.get_cpu_capability()})
        if args.rows:  # the per-epoch rows and what comes with them; the first wall_s stays
            keep_machine_of_sections(results)
            fresh = benchmark(root, sizes, args.images, args.repeats, args.batch_size)
            for stale in set(results) - set(fresh) - set(SECTIONS) - {"wall_s"}:
                del results[stale]  # a figure the benchmark no longer measures
            results.update(fresh)
            save()
    else:
        results = benchmark(root, sizes, args.images, args.repeats, args.batch_size)
        save()
    if args.limits:
        results["limits"] = {"machine": this_machine(), **limits(results, args.batch_size)}
        print(f"fp32 matmul: {results['limits']['matmul_gflop_s']:.1f} GFLOP/s")
        for row in results["limits"]["rows"]:
            print(f"{row['size']:>4} {row['mode']:<10} {row['kit_gflop_per_image']:.2f} GFLOP/image"
                  f" | kit {100 * row['kit_fraction']:.1f}% of matmul rate | reference "
                  f"{100 * row['reference_fraction']:.1f}%")
        for entry in results["limits"]["profile_fine_tuned"]["top"]:
            print(f"  {entry['operator']:<45} {entry['self_ms']:9.1f} ms {entry['share']:6.1%}")
        save()
    if args.seed_a:
        results["seed_a"] = versus_seed_a(root, args.repeats, args.batch_size)
        whole = results["seed_a"]["whole_run_s"]
        print(f"whole report-A run (set-up + 2 x {results['seed_a']['epochs']} epochs): seed A "
              f"{whole['seed_a']:.0f} s, kit {whole['kit']:.0f} s, "
              f"{results['seed_a']['whole_run_kit_vs_seed_a']:.2f}x")
        save()
    if args.compile:
        results["compile"] = {"machine": this_machine(), **versus_compile(
            root, sizes[0], args.images, args.repeats, args.batch_size)}
        save()
    if args.malloc:
        results["malloc"] = {"machine": this_machine(), **versus_glibc_malloc(
            root, sizes, args.repeats, args.batch_size, args.malloc_images)}
        save()
    if args.scale:
        from data_scale import run as scale_run

        scale = scale_run([int(c) for c in args.scale.split(",")],
                          epoch=not args.scale_no_epoch)
        if args.update and args.scale_no_epoch and "scale" in results:  # keep the epochs
            epochs = {row["images"]: row for row in results["scale"]["rows"]}
            for row in scale["rows"]:
                for key in ("epoch", "epoch_time_vs_smallest"):
                    if key in epochs.get(row["images"], {}):
                        row[key] = epochs[row["images"]][key]
        results["scale"] = {"machine": this_machine(), **scale}
        save()
    print("\nsize mode       kit img/s  AVX2 cap  reference  smp   kit/ref  kit/smp  "
          "epoch/compute")
    for row in results["rows"]:
        print(f"{row['size']:>4} {row['mode']:<10} {row['kit_img_s']:9.1f} "
              f"{row.get('kit_avx2_img_s', float('nan')):9.1f} "
              f"{row['reference_img_s']:10.1f} {row['smp_img_s']:5.1f} "
              f"{row['kit_vs_reference']:8.2f} {row['kit_vs_smp']:8.2f} "
              f"{row['epoch_over_compute']:13.3f}")
    for key, value in results.items():
        if key not in ("rows", *SECTIONS):
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
