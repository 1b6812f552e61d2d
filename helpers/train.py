"""Training: ``fit`` with per-epoch validation, history, checkpoints and resume.

A run lives in one folder::

    history.csv   one row per finished epoch (rewritten atomically after every epoch)
    last.pt       model, optimiser and loss scaler after the latest epoch (for ``resume``)
    best.pt       model weights of the epoch with the best validation Dice
    config.json   the TrainConfig the run was started with

Speed notes. The data already sit in memory as uint8 (see :mod:`helpers.batches`). With a
frozen encoder and no augmentation, the encoder sees the same images every epoch and gives
the same features (it is in eval mode, without dropout), so :func:`fit` computes them once
and trains the decoder alone: no encoder forward or backward in any later epoch. On a Linux
CPU, :func:`fit` keeps freed memory for the next step instead of returning it to the system
(:func:`helpers.device.reusing_freed_memory`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from helpers import distributed, runs
from helpers.atomic import atomic_path, remove_leftovers, write_text
from helpers.batches import TensorSet, augment, batch_indices, scale_augment
from helpers.data import SegmentationSet
from helpers.device import autocast, resolve_device, reusing_freed_memory
from helpers.distributed import SINGLE, Rank, from_main
from helpers.metrics import per_image_scores
from helpers.model import DECODERS, MobileNetV2UNet
from helpers.paths import public_path
from helpers.runs import RunFolderError

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "val_soft_iou",
                   "val_soft_dice", "lr_encoder", "lr_decoder", "seconds"]


LOSSES = ("bce", "bce_dice")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one model's training run (saved with it as ``config.json``).

    The values of a real run come from a preset (:mod:`helpers.config`); the defaults here
    are only the neutral ones (no encoder learning rate, plain BCE, no augmentation). Invalid
    values are refused on construction, before any work starts.
    """

    epochs: int
    batch_size: int
    freeze_encoder: bool
    decoder_lr: float
    encoder_lr: float = 0.0
    loss: str = "bce"  # "bce" or "bce_dice"
    seed: int = 0
    augment: bool = False  # paired flips and 90-degree turns, mild colour jitter
    scale_augment: bool = False  # paired zoom-out (skin margin, dermatoscope ring) and zoom-in
    schedule: str = "constant"  # "constant", or "cosine" (from the set rates down to 0)
    decoder: str = "transposed"  # "transposed" (report A), "upsample", "report_b"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    channels_last: bool = True  # CPU (and MPS) only: CUDA GPUs run NCHW (uses_channels_last)
    amp: bool = True  # autocast (bf16, else fp16) on GPU; ignored on CPU
    cache_encoder_features: bool = True  # frozen encoder + no augmentation only
    compile: bool = False  # torch.compile what trains (opt-in: it costs compile time first)
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidSetting(name, f"must be a whole number >= 1, not {value!r}")
        for name in ("encoder_lr", "decoder_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise InvalidSetting(name, f"must be a finite number >= 0, not {value!r}")
        if self.freeze_encoder and self.encoder_lr:
            raise InvalidSetting("encoder_lr", "must be 0 when the encoder is frozen")
        if not self.freeze_encoder and not self.encoder_lr:
            raise InvalidSetting("encoder_lr", "must be > 0 when the encoder is fine-tuned")
        for name, allowed in (("loss", LOSSES), ("schedule", SCHEDULES), ("decoder", DECODERS)):
            if getattr(self, name) not in allowed:
                raise InvalidSetting(name, f"must be one of {', '.join(allowed)}, "
                                           f"not {getattr(self, name)!r}")
        for name in ("freeze_encoder", "augment", "scale_augment", "channels_last", "amp",
                     "cache_encoder_features", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSetting(name, f"must be true or false, not {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidSetting("seed", f"must be a whole number, not {self.seed!r}")
        try:
            resolve_device(self.device)
        except ValueError as error:
            raise InvalidSetting("device", str(error).removeprefix(f"device {self.device!r}")
                                 .lstrip(": ") or "is not valid") from error

    def resolved_device(self) -> torch.device:
        return resolve_device(self.device)

    def uses_channels_last(self) -> bool:
        """Whether images and the model are channels_last: as set, except on a CUDA GPU.

        There NCHW measured faster: cuDNN prepares each new batch shape in channels_last for
        seconds (report A's whole run on an H100: 128 s channels_last, 82 s NCHW; README
        "Speed"), while on the CPU channels_last is the fast layout.
        """
        return self.channels_last and self.resolved_device().type != "cuda"


class InvalidSetting(ValueError):
    """A setting with a value that cannot work; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


def build_model(config: TrainConfig, pretrained: bool = True) -> MobileNetV2UNet:
    """A seeded U-Net (same seed, same decoder initialisation) set up for ``config``."""
    torch.manual_seed(config.seed)
    model = MobileNetV2UNet(pretrained=pretrained, freeze_encoder=config.freeze_encoder,
                            decoder=config.decoder)
    model = model.to(config.resolved_device())
    if config.uses_channels_last():
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: MobileNetV2UNet, config: TrainConfig) -> torch.optim.Adam:
    """Adam with one parameter group for the decoder and, unless frozen, one for the encoder."""
    groups = [{"params": list(model.decoder.parameters()), "lr": config.decoder_lr,
               "name": "decoder"}]
    if not model.encoder_frozen:
        groups.append({"params": list(model.encoder.parameters()), "lr": config.encoder_lr,
                       "name": "encoder"})
    return torch.optim.Adam(groups)


def make_scaler(config: TrainConfig) -> torch.amp.GradScaler:
    """The loss scaler of mixed precision: on for float16 autocast (GPUs without bfloat16),
    otherwise a no-op. Its scale adapts during training and is saved with ``last.pt``."""
    device = config.resolved_device()
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and config.amp
                                and not torch.cuda.is_bf16_supported())


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
    device, channels_last = config.resolved_device(), config.uses_channels_last()
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
    device, channels_last = config.resolved_device(), config.uses_channels_last()
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
    device, channels_last = config.resolved_device(), config.uses_channels_last()
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


def _save_atomic(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, model: nn.Module) -> dict:
    """Load a checkpoint's weights into ``model`` (safely: ``weights_only=True``); a damaged
    file or one from another program stops with :class:`RunFolderError` naming it."""
    path = Path(path)
    state = runs.read_checkpoint(path)
    _load_weights(model, state["model"], path)
    return state


def _load_weights(model: nn.Module, weights: dict, path: Path) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise RunFolderError(f"{path} does not fit this model: {str(error)[:300]}") from error


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """The per-epoch history of the finished epochs of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    state = runs.read_checkpoint(run_dir / runs.LAST)
    return pd.DataFrame(runs.trusted_history(run_dir, state, HISTORY_COLUMNS),
                        columns=HISTORY_COLUMNS)


def load_trained(config: TrainConfig, run_dir: str | Path, checkpoint: str = "last",
                 data: tuple[SegmentationSet, SegmentationSet] | None = None
                 ) -> tuple[MobileNetV2UNet, int]:
    """The model saved in ``run_dir`` (``"last"`` or ``"best"`` epoch) in eval mode, and the
    epoch it comes from.

    With ``data`` (the training and validation sets) the run must be finished and must have
    been trained with ``config`` on that data; otherwise :class:`RunFolderError` says how it
    differs, so a notebook never scores new data or new settings with an old model.
    """
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', not {checkpoint!r}")
    run_dir = Path(run_dir)
    if data is not None:
        _check_settings(config, run_dir, compare_epochs=True)
        runs.check_data(run_dir, runs.data_fingerprint(*data, pretrained=True))
        done = int(runs.read_checkpoint(run_dir / runs.LAST)["epoch"])
        if done < config.epochs:
            raise RunFolderError(f"The run in {run_dir} has finished {done} of its "
                                 f"{config.epochs} epochs: train it to the end first.")
    model = build_model(config)
    # a crash between last.pt and best.pt may have left best.pt behind: last.pt then holds
    # the best weights (read only: the folder may be read-only, or in use by a training)
    stand_in = _best_behind_last(run_dir) if checkpoint == "best" else None
    if stand_in is not None:
        _load_weights(model, stand_in["model"], run_dir / runs.LAST)
        return model.eval(), stand_in["epoch"]
    state = load_checkpoint(run_dir / f"{checkpoint}.pt", model)
    return model.eval(), int(state["epoch"])


def _check_settings(config: TrainConfig, run_dir: Path, compare_epochs: bool) -> None:
    saved = runs.read_json(run_dir / runs.CONFIG)
    # A setting added after the run was made has its default value there.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    saved = {**defaults, **saved}
    changed = sorted(k for k, v in dataclasses.asdict(config).items()
                     if (compare_epochs or k != "epochs") and saved.get(k) != v)
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} there, {getattr(config, k)!r} now"
                            for k in changed)
        raise RunFolderError(f"The run in {run_dir} was trained with other settings "
                             f"({details}). Use another output folder for a different "
                             "configuration.")


def load_run(run_dir: str | Path, checkpoint: str = "last", device: str | None = None
             ) -> tuple[MobileNetV2UNet, TrainConfig, int]:
    """A trained model from its run folder alone (for predicting on new images): the model in
    eval mode, its settings (``device`` replaced when given) and the image size it was trained
    at, from the folder's ``config.json`` and ``data.json``."""
    config, size = read_run_settings(run_dir, device)
    model, _ = load_trained(config, run_dir, checkpoint)
    return model, config, size


def read_run_settings(run_dir: str | Path, device: str | None = None
                      ) -> tuple[TrainConfig, int]:
    """A run folder's training settings (``device`` replaced when given) and the image size it
    was trained at."""
    run_dir = Path(run_dir)
    saved = runs.read_json(run_dir / runs.CONFIG)
    try:
        config = TrainConfig(**{**saved, **({"device": device} if device else {})})
    except (TypeError, ValueError) as error:
        raise RunFolderError(f"{run_dir / runs.CONFIG} does not hold valid training settings "
                             f"({error}).") from error
    size = runs.read_json(run_dir / runs.DATA).get("image_size")
    if not isinstance(size, int):
        raise RunFolderError(f"{run_dir / runs.DATA} does not say the image size the model was "
                             "trained at; train it again with this version of the kit.")
    return config, size


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the checkpoints keep the last good epoch."""


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

    Started by ``torchrun`` (see :mod:`helpers.distributed`), the same call trains on every
    process with the same global batch; the main process alone validates and writes.
    """
    out_dir = Path(out_dir)
    _check_model_fits(model, config)
    rank = distributed.start(config.resolved_device())
    if rank.parallel and 2 * rank.size > min(config.batch_size, len(train)):
        raise ValueError(f"{rank.size} processes share each batch, but batch_size is "
                         f"{config.batch_size} and the training set has {len(train)} images: "
                         "every process needs at least two images of every batch (BatchNorm).")
    fingerprint = runs.data_fingerprint(train, val, model.pretrained,
                                        _common_folder(train.image_paths))
    with ExitStack() as stack:
        stack.enter_context(reusing_freed_memory(config.resolved_device()))  # same results
        problem = None
        if rank.is_main:  # the main process owns the folder: lock, and clear on request
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(runs.locked(out_dir))
                if fresh:
                    runs.clear(out_dir)
                remove_leftovers(out_dir)  # temporary files of a writer that was killed
            except (OSError, RunFolderError) as error:
                problem = error
        distributed.raise_everywhere(rank, problem)
        history = _fit_locked(model, train, val, config, out_dir, resume, fingerprint, progress,
                              rank)
    return history


def _check_model_fits(model: MobileNetV2UNet, config: TrainConfig) -> None:
    """Refuse a model that was not built from ``config`` (see :func:`build_model`): its run
    would be recorded with settings it was not trained with."""
    built = {"freeze_encoder": model.encoder_frozen, "decoder": model.decoder_kind,
             "device": next(model.parameters()).device.type}
    wanted = {"freeze_encoder": config.freeze_encoder, "decoder": config.decoder,
              "device": config.resolved_device().type}
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


def _best_epoch(rows: list[dict]) -> int:
    """The first epoch with the highest validation Dice (the one ``best.pt`` holds); 0 if none."""
    best, best_epoch = -1.0, 0
    for row in rows:
        if row["val_dice"] > best:
            best, best_epoch = row["val_dice"], int(row["epoch"])
    return best_epoch


def _best_behind_last(run_dir: Path, last: dict | None = None,
                      rows: list[dict] | None = None) -> dict | None:
    """What ``best.pt`` should hold, from ``last.pt``, when a crash came between writing the
    two in the epoch that was the best so far (the weights are the same); else None.
    ``last`` and ``rows``: last.pt and its history, when the caller has read them already."""
    if last is None or rows is None:
        try:
            last = runs.read_checkpoint(run_dir / runs.LAST)
            rows = runs.trusted_history(run_dir, last, HISTORY_COLUMNS)
        except RunFolderError:
            return None  # no usable last.pt: best.pt is all there is
    epoch = int(last["epoch"])
    if _best_epoch(rows) != epoch:
        return None  # best.pt was written in an earlier, finished epoch
    best_path = run_dir / runs.BEST
    if best_path.exists():
        with contextlib.suppress(RunFolderError):  # a damaged best.pt: last.pt has it
            if int(runs.read_checkpoint(best_path)["epoch"]) == epoch:
                return None
    return {"model": last["model"], "epoch": epoch, "val_dice": float(last["best_dice"])}


def _repair_best(out_dir: Path, last: dict, rows: list[dict]) -> None:
    """Write ``best.pt`` again if a crash left it behind ``last.pt`` (see
    :func:`_best_behind_last`); only under the folder's lock, by the process that trains."""
    stand_in = _best_behind_last(out_dir, last, rows)
    if stand_in is not None:
        _save_atomic(stand_in, out_dir / runs.BEST)


def _resume_state(model: MobileNetV2UNet, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, config: TrainConfig, out_dir: Path,
                  fingerprint: dict, repair: bool = True) -> tuple[int, float, list[dict]]:
    """(first epoch to train, best Dice so far, history rows) of the run in ``out_dir``;
    with ``repair``, also a ``best.pt`` that a crash left one epoch behind is written."""
    last_path = out_dir / runs.LAST
    # More epochs continue a constant-rate run; a cosine schedule depends on the epoch count
    _check_settings(config, out_dir, compare_epochs=config.schedule == "cosine")
    runs.check_data(out_dir, fingerprint)
    state = runs.read_checkpoint(last_path, needs=("model", "epoch", "optimizer", "best_dice"))
    if int(state["epoch"]) > config.epochs:
        raise RunFolderError(f"{out_dir} holds {state['epoch']} epochs, more than the "
                             f"{config.epochs} asked for. Use another output folder, or "
                             "fit(..., fresh=True) to train it again.")
    load_checkpoint(last_path, model)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, ValueError) as error:
        raise RunFolderError(f"{last_path} has no usable optimiser state ({error}).") from error
    # float16 training's loss scale (runs without float16, and older runs, saved none)
    if scaler.is_enabled() and state.get("scaler"):
        try:
            scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, TypeError) as error:
            raise RunFolderError(f"{last_path} has no usable loss-scaler state ({error})."
                                 ) from error
    rows = runs.trusted_history(out_dir, state, HISTORY_COLUMNS)
    if repair:
        _repair_best(out_dir, state, rows)
    return int(state["epoch"]) + 1, float(state["best_dice"]), rows


def _fit_locked(model: MobileNetV2UNet, train: SegmentationSet, val: SegmentationSet,
                config: TrainConfig, out_dir: Path, resume: bool, fingerprint: dict,
                progress: bool, rank: Rank = SINGLE) -> pd.DataFrame:
    history_path, last_path = out_dir / runs.HISTORY, out_dir / runs.LAST
    optimizer = make_optimizer(model, config)
    scaler = make_scaler(config)

    def read_folder() -> tuple[int, float, list[dict]]:
        if not last_path.exists():
            return 1, -1.0, []
        if not resume:
            raise FileExistsError(f"{out_dir} already holds a run (last.pt). Pass resume=True "
                                  "to continue it, or choose another output folder.")
        return _resume_state(model, optimizer, scaler, config, out_dir, fingerprint,
                             repair=rank.is_main)

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
        write_text(out_dir / runs.CONFIG, json.dumps(dataclasses.asdict(config), indent=2))
        write_text(out_dir / runs.DATA, json.dumps(fingerprint, indent=2))
        write_text(history_path, pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))

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
    best_epoch = _best_epoch(rows)
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
            write_text(history_path,
                       pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(index=False))
            _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scaler": scaler.state_dict(), "epoch": epoch,
                          "best_dice": best_dice, "best_epoch": best_epoch, "history": rows},
                         last_path)
            if improved:
                _save_atomic({"model": model.state_dict(), "epoch": epoch,
                              "val_dice": best_dice}, out_dir / runs.BEST)
        epochs.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{scores['dice']:.4f}")
    distributed.barrier(rank)  # the files are complete before any process goes on
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)
