"""Training: ``fit`` with per-epoch validation, history, checkpoints and resume.

A run lives in one folder, whose files :mod:`helpers.runs` owns: ``history.csv`` (one row
per finished epoch), ``last.pt`` (everything needed to resume), ``best.pt`` (the epoch with the
best validation Dice), ``config.json`` and ``data.json`` (the settings and data it was trained
with).

Speed notes. The data already sit in memory as uint8 (see :mod:`helpers.batches`). With a
frozen encoder and no augmentation, the encoder sees the same images every epoch and gives
the same features (it is in eval mode, without dropout), so :func:`fit` computes them once
and trains the decoder alone: no encoder forward or backward in any later epoch. On a Linux
CPU, :func:`fit` keeps freed memory for the next step instead of returning it to the system
(:func:`helpers.system.device.reusing_freed_memory`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from helpers.batches import TensorSet, augment, batch_indices, scale_augment
from helpers.config import TrainConfig
from helpers.data import SegmentationSet
from helpers.errors import NonFiniteLossError, RunFolderError, UsageError
from helpers.metrics import per_image_scores
from helpers.model import MobileNetV2UNet
from helpers.paths import public_path
from helpers.runs import checkpoints
from helpers.runs import folder as run_folder
from helpers.system import distributed
from helpers.system.atomic import remove_leftovers, write_text
from helpers.system.device import (
    autocast,
    autocast_dtype,
    describe_machine,
    resolve_device,
    reusing_freed_memory,
    uses_channels_last,
)
from helpers.system.distributed import SINGLE, Rank, from_main
from helpers.system.writable import output_folder


def placement(config: TrainConfig) -> tuple[torch.device, bool]:
    """The device ``config`` trains on, and whether tensors are channels_last there."""
    device = resolve_device(config.device)
    return device, uses_channels_last(device, config.channels_last)


def make_optimizer(model: MobileNetV2UNet, config: TrainConfig) -> torch.optim.Adam:
    """Adam with one parameter group for the decoder and, unless frozen, one for the encoder."""
    # BEGIN SOLUTION exercise 2: a truly frozen encoder and per-group learning rates
    # HINT: groups named "decoder" (config.decoder_lr) and, unless frozen, "encoder" (encoder_lr)
    groups = [{"params": list(model.decoder.parameters()), "lr": config.decoder_lr,
               "name": "decoder"}]
    if not model.encoder_frozen:
        groups.append({"params": list(model.encoder.parameters()), "lr": config.encoder_lr,
                       "name": "encoder"})
    return torch.optim.Adam(groups)
    # END SOLUTION


def make_scaler(config: TrainConfig) -> torch.amp.GradScaler:
    """The loss scaler of mixed precision: on for float16 autocast (GPUs without bfloat16
    hardware), otherwise a no-op. Its scale adapts during training and is saved with
    ``last.pt``."""
    device = resolve_device(config.device)
    return torch.amp.GradScaler(device.type,
                                enabled=autocast_dtype(device, config.amp) == torch.float16)


def learning_rate_factor(config: TrainConfig, epoch: int) -> float:
    """The share of the set learning rates used in ``epoch`` (1-based): 1 for ``constant``;
    for ``cosine`` half a cosine from 1 in the first epoch towards 0 after the last. A pure
    function of the epoch, so a resumed run gets the same rates as an unbroken one."""
    if config.schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (epoch - 1) / config.epochs))


def set_learning_rates(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int
                       ) -> dict[str, float]:
    """Set each parameter group's rate for ``epoch``; return them by group name."""
    factor = learning_rate_factor(config, epoch)
    base = {"decoder": config.decoder_lr, "encoder": config.encoder_lr}
    for group in optimizer.param_groups:
        group["lr"] = base[group["name"]] * factor
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


def segmentation_loss(logits: Tensor, masks: Tensor, kind: str = "bce") -> Tensor:
    """Mean binary cross-entropy on logits; ``"bce_dice"`` adds the soft Dice loss."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), masks)
    if kind == "bce_dice":
        probs = torch.sigmoid(logits.float()).flatten(1)
        target = masks.flatten(1)
        dice = (2 * (probs * target).sum(1) + 1) / (probs.sum(1) + target.sum(1) + 1)
        loss = loss + (1 - dice).mean()
    elif kind != "bce":
        raise ValueError(f"loss must be 'bce' or 'bce_dice', not {kind!r}")
    return loss


@torch.no_grad()
def encoder_features(model: MobileNetV2UNet, data: TensorSet, config: TrainConfig,
                     progress: bool = False) -> list[Tensor]:
    """Frozen-encoder outputs for every sample of ``data``, one stacked tensor per stage."""
    device, channels_last = placement(config)
    model.encoder.eval()
    chunks: list[list[Tensor]] = []
    for index in tqdm(list(batch_indices(len(data), config.eval_batch_size, shuffle=False)),
                      desc="Encoder features (computed once)", disable=not progress, leave=False):
        images, _ = data.batch(index, device, channels_last)
        with autocast(device, config.amp):
            chunks.append([f.float() for f in model.encoder(images)])
    return [torch.cat(stage) for stage in zip(*chunks, strict=True)]


def _logits(model: MobileNetV2UNet, images: Tensor, index: Tensor,
            features: list[Tensor] | None, wrapped: nn.Module | None = None) -> Tensor:
    """The model's logits; from cached encoder ``features`` when given. ``wrapped`` is the
    DistributedDataParallel wrapper of the part that learns (model or decoder), if any."""
    if features is None:
        return (wrapped or model)(images)
    index = index.to(features[0].device)
    return (wrapped or model.decoder)([f[index] for f in features], images)


@torch.no_grad()
def validate(model: MobileNetV2UNet, data: TensorSet, config: TrainConfig,
             features: list[Tensor] | None = None) -> dict[str, float]:
    """Mean loss and mean per-image IoU/Dice (thresholded and soft) over ``data``: the
    per-epoch validation. Test-set evaluation is :mod:`helpers.evaluate`."""
    device, channels_last = placement(config)
    model.eval()
    total_loss, scores = 0.0, {"iou": [], "dice": [], "soft_iou": [], "soft_dice": []}
    for index in batch_indices(len(data), config.eval_batch_size, shuffle=False):
        images, masks = data.batch(index, device, channels_last)
        with autocast(device, config.amp):
            logits = _logits(model, images, index, features)
        total_loss += segmentation_loss(logits, masks, config.loss).item() * len(index)
        per_image = per_image_scores(torch.sigmoid(logits.float()).cpu(), masks.cpu())
        for name in scores:
            scores[name].append(per_image[name])
    result = {name: torch.cat(values).mean().item() for name, values in scores.items()}
    return {"loss": total_loss / len(data), **result}


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, rank: Rank = SINGLE
                  ) -> list[Tensor]:
    """One epoch's shuffled batches of indices. A last batch too small to train on is merged
    into the one before: BatchNorm needs two images, and under torchrun each process two."""
    batches = list(batch_indices(n, batch_size, shuffle=True, generator=generator))
    if len(batches) > 1 and len(batches[-1]) < 2 * rank.size:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def share_weight(share: int, batch: int, rank: Rank) -> float:
    """The factor for the loss of a process's ``share`` of a ``batch`` (means over its own
    images): DistributedDataParallel averages the processes' gradients, and with these
    factors that average is the whole batch's mean, also when the shares differ in size
    (1 when they are equal)."""
    return share * rank.size / batch


def train_one_epoch(model: MobileNetV2UNet, data: TensorSet, optimizer: torch.optim.Optimizer,
                 config: TrainConfig, epoch: int, features: list[Tensor] | None,
                 scaler: torch.amp.GradScaler, progress: bool, rank: Rank = SINGLE,
                 wrapped: nn.Module | None = None) -> float:
    """One pass over ``data``; the mean training loss. Under torchrun (``rank``) every
    process draws the same batches and augmentations and trains on its share of each."""
    device, channels_last = placement(config)
    torch.manual_seed(config.seed * 100_003 + epoch)  # dropout: same seed, same history
    shuffle = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    model.train()
    total, seen = 0.0, 0
    batches = epoch_batches(len(data), config.batch_size, shuffle, rank)
    for number, index in enumerate(tqdm(batches, desc=f"Epoch {epoch}", disable=not progress,
                                        leave=False), start=1):
        images, masks = data.batch(index, device, channels_last)
        size = len(index)
        if config.scale_augment:
            images, masks = scale_augment(images, masks, shuffle)
        if config.augment:
            images, masks = augment(images, masks, shuffle)
        if rank.parallel:  # this process's share of the global batch
            share = slice(rank.index, None, rank.size)
            images, masks, index = images[share], masks[share], index[share]
        with autocast(device, config.amp):
            logits = _logits(model, images, index, features, wrapped)
            loss = segmentation_loss(logits, masks, config.loss)
        value = loss.item()
        if rank.parallel:  # every process stops together, or none
            value, count = distributed.total(rank, value * len(index), len(index))
            value /= count
            loss = loss * share_weight(len(index), size, rank)
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"Epoch {epoch}, batch {number} of {len(batches)}: the training loss is "
                f"{value}. Training stopped before this step; the checkpoints keep the last "
                "finished epoch. Lower the learning rate, or look for NaN or infinite values "
                "in the data.")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += value * size
        seen += size
    return total / seen


def fit(model: MobileNetV2UNet, train: SegmentationSet, val: SegmentationSet,
        config: TrainConfig, out_dir: str | Path, resume: bool = False, fresh: bool = False,
        progress: bool = True) -> pd.DataFrame:
    """Train for ``config.epochs`` epochs; return the per-epoch history as a DataFrame.

    After every epoch ``history.csv`` and ``last.pt`` are written (atomically), and
    ``best.pt`` when the validation Dice improves (see :mod:`helpers.runs` for the folder).
    With ``resume=True`` a run in ``out_dir`` continues where it stopped (a finished run just
    returns its history) provided it has the same settings and the same data; without it, an
    existing run is never overwritten, unless ``fresh=True`` asks to delete it and start
    again. A NaN or infinite loss stops training with :class:`NonFiniteLossError` before
    anything is saved, so the checkpoints keep the last good epoch.

    ``progress`` shows one bar over the epochs (one bar, so notebooks stay small).

    Started by ``torchrun`` (see :mod:`helpers.system.distributed`), the same call trains on every
    process with the same global batch; the main process alone validates and writes.
    """
    out_dir = Path(out_dir)
    _check_model_fits(model, config)
    rank = distributed.start(resolve_device(config.device))
    check_batch_for_processes(rank, config.batch_size, len(train))
    with ExitStack() as stack:
        stack.enter_context(reusing_freed_memory(resolve_device(config.device)))  # same results

        def take_the_folder() -> None:  # the main process owns it: lock, clear on request
            output_folder(out_dir, what="run folder").mkdir(parents=True, exist_ok=True)
            stack.enter_context(run_folder.locked(out_dir))
            if fresh:
                run_folder.clear(out_dir)
            remove_leftovers(out_dir)  # temporary files of a writer that was killed

        # whatever stops the main process here stops the others too: none waits for it
        _, problem = distributed.attempt(take_the_folder) if rank.is_main else (None, None)
        distributed.raise_everywhere(rank, problem)
        fingerprint = run_folder.data_fingerprint(train, val, model.pretrained,
                                                  _common_folder(train.image_paths))
        history = _fit_locked(model, train, val, config, out_dir, resume, fingerprint, progress,
                              rank)
    return history


def check_batch_for_processes(rank: Rank, batch_size: int,
                              images: int | None = None) -> None:
    """Under torchrun, refuse a batch (or a training set of ``images``) too small to give
    every process two images (BatchNorm needs two). Only the main process says so; the
    others stop with :class:`PartnerStopped`, so the message is printed once."""
    smallest = batch_size if images is None else min(batch_size, images)
    problem = None
    if rank.is_main and rank.parallel and 2 * rank.size > smallest:
        data = "" if images is None else f" and the training set has {images} images"
        problem = UsageError(f"{rank.size} processes share each batch, but batch_size is "
                             f"{batch_size}{data}: every process needs at least two images "
                             "of every batch (BatchNorm).")
    distributed.raise_everywhere(rank, problem)


def _check_model_fits(model: MobileNetV2UNet, config: TrainConfig) -> None:
    """Refuse a model that was not built from ``config`` (see :func:`build_model`): its run
    would be recorded with settings it was not trained with."""
    built = {"freeze_encoder": model.encoder_frozen, "decoder": model.decoder_kind,
             "device": next(model.parameters()).device.type}
    wanted = {"freeze_encoder": config.freeze_encoder, "decoder": config.decoder,
              "device": resolve_device(config.device).type}
    differ = [f"{key}: {built[key]!r} in the model, {wanted[key]!r} in the settings"
              for key in built if built[key] != wanted[key]]
    if differ:
        raise ValueError(f"The model does not fit its training settings ({'; '.join(differ)}):"
                         " build it with build_model(config).")


def _common_folder(paths: list[Path]) -> str:
    if not paths:
        return ""
    root = Path(os.path.commonpath([p.parent for p in paths])).parent
    return public_path(root)


def _history_csv(rows: list[dict]) -> str:
    return pd.DataFrame(rows, columns=run_folder.HISTORY_COLUMNS).to_csv(index=False)


def _fit_locked(model: MobileNetV2UNet, train: SegmentationSet, val: SegmentationSet,
                config: TrainConfig, out_dir: Path, resume: bool, fingerprint: dict,
                progress: bool, rank: Rank = SINGLE) -> pd.DataFrame:
    history_path, last_path = out_dir / run_folder.HISTORY, out_dir / run_folder.LAST
    optimizer = make_optimizer(model, config)
    scaler = make_scaler(config)

    def read_folder() -> tuple[int, float, list[dict]]:
        if not last_path.exists():
            return 1, -1.0, []
        if not resume:
            raise FileExistsError(f"{out_dir} already holds a run (last.pt). Pass resume=True "
                                  "to continue it, or choose another output folder.")
        return checkpoints.resume_state(model, optimizer, scaler, config, out_dir,
                                        fingerprint, repair=rank.is_main)

    # Every process reads the folder, and all have done so before the main one writes.
    state, error = distributed.attempt(read_folder)
    distributed.meet(rank, error, f"reading {out_dir}")
    start, best_dice, rows = state
    starts = distributed.gathered(rank, start)
    if len(set(starts)) > 1:
        raise RunFolderError(
            f"The processes found different runs in {out_dir} (they would start at epochs "
            f"{starts}): on several machines the output folder must be one shared folder.")
    if rank.is_main:
        write_text(out_dir / run_folder.CONFIG, json.dumps(dataclasses.asdict(config), indent=2))
        write_text(out_dir / run_folder.DATA, json.dumps(fingerprint, indent=2))
        write_text(history_path, _history_csv(rows))
        if start <= config.epochs:
            machine = describe_machine(resolve_device(config.device), config.amp)
            run_folder.record_machine(out_dir, start, machine)

    train_set, val_set = TensorSet(train), TensorSet(val)
    train_features = val_features = None
    # A split on disk is too big for the RAM, and its encoder features are bigger still.
    if (model.encoder_frozen and config.cache_encoder_features and not config.augment
            and not config.scale_augment and not (train_set.on_disk or val_set.on_disk)
            and start <= config.epochs):
        train_features = encoder_features(model, train_set, config)
        val_features = encoder_features(model, val_set, config)
    if config.compile and start <= config.epochs:  # compiled on first use (epoch 1's seconds)
        (model.decoder if train_features is not None else model).compile()
    wrapped = None
    if rank.parallel and start <= config.epochs:  # averages the gradients of the processes
        learner = model.decoder if train_features is not None else model
        wrapped = nn.parallel.DistributedDataParallel(learner)
    best_epoch = checkpoints.best_epoch(rows)
    epochs = tqdm(range(start, config.epochs + 1), desc="Training",
                  disable=not progress or not rank.is_main, initial=start - 1,
                  total=config.epochs)
    for epoch in epochs:
        began = time.perf_counter()
        lrs = set_learning_rates(optimizer, config, epoch)
        train_loss = train_one_epoch(model, train_set, optimizer, config, epoch, train_features,
                                     scaler, progress=False, rank=rank, wrapped=wrapped)
        scores = from_main(rank, validate(model, val_set, config, val_features)
                           if rank.is_main else None)
        if not math.isfinite(scores["loss"]):
            raise NonFiniteLossError(
                f"Epoch {epoch}: the validation loss is {scores['loss']} (the weights are no "
                f"longer finite). Nothing of this epoch was saved; {last_path} keeps epoch "
                f"{epoch - 1}. Lower the learning rate or check the data.")
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": scores["loss"],
               "val_iou": scores["iou"], "val_dice": scores["dice"],
               "val_soft_iou": scores["soft_iou"], "val_soft_dice": scores["soft_dice"],
               "lr_encoder": lrs.get("encoder", 0.0), "lr_decoder": lrs["decoder"],
               "seconds": time.perf_counter() - began}
        rows.append(row)
        improved = scores["dice"] > best_dice
        best_dice = max(best_dice, scores["dice"])
        if improved:
            best_epoch = epoch
        if rank.is_main:
            # History first, then last.pt (the epoch is done), then best.pt: after a crash
            # before last.pt, resume re-runs the epoch; after one before best.pt, resume
            # writes best.pt from last.pt, which holds the same weights.
            write_text(history_path, _history_csv(rows))
            checkpoints.save_checkpoint(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scaler": scaler.state_dict(), "epoch": epoch, "best_dice": best_dice,
                 "best_epoch": best_epoch, "history": rows}, last_path)
            if improved:
                checkpoints.save_checkpoint(
                    {"model": model.state_dict(), "epoch": epoch, "val_dice": best_dice},
                    out_dir / run_folder.BEST)
        epochs.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{scores['dice']:.4f}")
    distributed.barrier(rank)  # the files are complete before any process goes on
    return pd.DataFrame(rows, columns=run_folder.HISTORY_COLUMNS)
