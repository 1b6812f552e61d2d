"""The run configuration: every setting of one experiment, typed, checked and frozen.

A run (both models of one experiment) is described by a preset in ``presets/``.
``presets/report_a.yaml`` is the base: it lists every setting, with report A's values. Every
other preset lists only what it changes, so ``report_b.yaml`` reads as the difference between
the two reports. :func:`load_config` merges the base, the preset and any overrides and returns
a frozen :class:`RunConfig`. A key it does not know, or a value that cannot work, stops it with
a message naming the file (or ``overrides``) and the key, before any notebook runs.

The two models are blocks named after what they are, ``frozen`` (the reports' "Model 1") and
``fine_tuned`` ("Model 2"); their keys are :class:`TrainConfig`'s field names, and a ``train``
block holds what both share.

Every setting is checked here, once, by the rules in ``RULES``; reading a preset imports
neither torch nor the training code.

The data folder is found the same way everywhere: an explicit value (a ``data_root``
argument, notebook parameter or ``--data-root``; the demo presets name their SYNTHETIC set
themselves), else ``$LESIONKIT_ISIC2016``, else ``data/isic2016`` in the repository.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.errors import ConfigError, InvalidSetting, shown
from helpers.paths import REPO_ROOT, display_path, resolve_path
from helpers.system.settings_file import read_settings

PRESET_DIR = REPO_ROOT / "presets"
BASE_PRESET = "report_a"
DATA_ROOT_VARIABLE = "LESIONKIT_ISIC2016"
DEFAULT_DATA_ROOT = "data/isic2016"

#: The two models of every run, in the reports' order, with the reports' names for them.
MODEL_NAMES = ("frozen", "fine_tuned")
MODEL_LABELS = {"frozen": "Model 1", "fine_tuned": "Model 2"}
VALIDATION_PRACTICES = ("holdout", "test")
LOSSES = ("bce", "bce_dice")
SCHEDULES = ("constant", "cosine")
#: The U-Net's decoders (:mod:`helpers.model`): report A's, upsample + conv, report B's.
DECODERS = ("transposed", "upsample", "report_b")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


# ---------------------------------------------------------------------------------------
# The rules: one per setting, a test of the value and what it must be.

Check = Callable[[Any], bool]


#: The largest values the settings may take. They keep one mistyped number from asking for
#: more memory, disk or time than any machine has; docs/settings.md lists them.
MAX_IMAGE_SIZE = 1024
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096
MAX_LEARNING_RATE = 1.0
MAX_IMAGES = 1_000_000
MAX_SAMPLES = 20  # each sample image is one row of the mask figure
MAX_IN_MEMORY_GB = 1024
MAX_TITLE_LENGTH = 200
MAX_PATH_LENGTH = 4096


def _whole(low: int, high: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(test: Callable[[float], bool]) -> Check:
    return lambda v: (isinstance(v, int | float) and not isinstance(v, bool)
                      and (isinstance(v, int) or math.isfinite(v)) and test(v))


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda v: isinstance(v, str) and v in choices


def _text(longest: int) -> Check:
    return lambda v: isinstance(v, str) and 0 < len(v) <= longest


def _image_size(v: Any) -> bool:
    return _whole(32, MAX_IMAGE_SIZE)(v) and v % 32 == 0


def _learning_rate(v: Any) -> bool:
    return _number(lambda x: 0 <= x <= MAX_LEARNING_RATE)(v)


RULES: dict[str, tuple[Check, str]] = {
    # the run
    "title": (_text(MAX_TITLE_LENGTH), f"must be a text of 1 to {MAX_TITLE_LENGTH} characters"),
    "data_root": (lambda v: v is None or _text(MAX_PATH_LENGTH)(v), "must be null or a folder"),
    "image_size": (_image_size, f"must be a multiple of 32 from 32 to {MAX_IMAGE_SIZE} "
                                "(32, 64, ..., 128, 256)"),
    "validation": (_one_of(VALIDATION_PRACTICES),
                   f"must be one of {', '.join(VALIDATION_PRACTICES)}"),
    "val_fraction": (_number(lambda v: 0 < v < 1), "must be a number between 0 and 1"),
    "max_images": (lambda v: v is None or _whole(1, MAX_IMAGES)(v),
                   f"must be null or a whole number from 1 to {MAX_IMAGES:,}"),
    "seed": (_whole(0, MAX_SEED), f"must be a whole number from 0 to 2**32 - 1 ({MAX_SEED})"),
    "device": (lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", v)
               is not None, f"is not one of {', '.join(DEVICE_CHOICES)}"),
    "sample_ids": (lambda v: (isinstance(v, list | tuple) and len(v) <= MAX_SAMPLES
                              and all(_text(100)(i) for i in v)),
                   f"must be a list of at most {MAX_SAMPLES} image ids"),
    "n_random_samples": (_whole(0, MAX_SAMPLES), f"must be a whole number from 0 to {MAX_SAMPLES}"),
    "test_time_flips": (_flag, "must be true or false"),
    "threshold": (lambda v: v == "validation" or _number(lambda x: 0 < x < 1)(v),
                  'must be a number between 0 and 1, or "validation"'),
    "in_memory_gb": (_number(lambda v: 0 <= v <= MAX_IN_MEMORY_GB),
                     f"must be a number of GiB from 0 to {MAX_IN_MEMORY_GB}"),
    # each model's training
    "epochs": (_whole(1, MAX_EPOCHS), f"must be a whole number from 1 to {MAX_EPOCHS:,}"),
    "batch_size": (_whole(1, MAX_BATCH_SIZE), f"must be a whole number from 1 to {MAX_BATCH_SIZE}"),
    "eval_batch_size": (_whole(1, MAX_BATCH_SIZE),
                        f"must be a whole number from 1 to {MAX_BATCH_SIZE}"),
    "decoder_lr": (_learning_rate, f"must be a number from 0 to {MAX_LEARNING_RATE:g}"),
    "encoder_lr": (_learning_rate, f"must be a number from 0 to {MAX_LEARNING_RATE:g}"),
    "loss": (_one_of(LOSSES), f"must be one of {', '.join(LOSSES)}"),
    "schedule": (_one_of(SCHEDULES), f"must be one of {', '.join(SCHEDULES)}"),
    "decoder": (_one_of(DECODERS), f"must be one of {', '.join(DECODERS)}"),
    **{flag: (_flag, "must be true or false")
       for flag in ("freeze_encoder", "augment", "scale_augment", "channels_last", "amp",
                    "cache_encoder_features", "compile")},
}


def _cost(key: str, value: Any) -> str:
    """What an out-of-range value would have asked for, where that helps to see why."""
    if key == "image_size" and isinstance(value, int) and MAX_IMAGE_SIZE < value < 10**7:
        per_image = 4 * value**2 / 2**30  # 3 colour bytes and 1 mask byte a pixel
        return (f" (at {value}x{value} one decoded image with its mask alone takes "
                f"{per_image:,.2f} GiB)")
    return ""


def problem_with(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for setting ``key`` ("must be ..., not ..."), or None.
    The value is quoted shortened, so a message never grows with what it quotes."""
    check, rule = RULES[key]
    return None if check(value) else f"{rule}, not {shown(value)}{_cost(key, value)}"


# ---------------------------------------------------------------------------------------
# One model's training settings


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one model's training run (saved with it as ``config.json``).

    The values of a real run come from a preset; the defaults here are only the neutral ones
    (no encoder learning rate, plain BCE, no augmentation). An invalid value is refused on
    construction with :class:`InvalidSetting`, before any work starts.
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
    channels_last: bool = True  # CPU (and MPS) only: CUDA GPUs run NCHW (system.device)
    amp: bool = True  # GPU autocast: bf16 from compute capability 8.0, else fp16; not on CPU
    cache_encoder_features: bool = True  # frozen encoder + no augmentation only
    compile: bool = False  # torch.compile what trains (opt-in: it costs compile time first)
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            problem = problem_with(field.name, getattr(self, field.name))
            if problem:
                raise InvalidSetting(field.name, problem)
        if self.freeze_encoder and self.encoder_lr:
            raise InvalidSetting("encoder_lr", "must be 0 when the encoder is frozen")
        if not self.freeze_encoder and not self.encoder_lr:
            raise InvalidSetting("encoder_lr", "must be > 0 when the encoder is fine-tuned")


#: Keys of the top level of a preset (besides the ``train`` and model blocks).
RUN_KEYS = ("title", "data_root", "image_size", "validation", "val_fraction", "max_images",
            "seed", "device", "sample_ids", "n_random_samples", "test_time_flips", "threshold",
            "in_memory_gb")
#: Keys a ``train`` or model block may set: TrainConfig's fields less those the run decides.
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("freeze_encoder", "seed", "device"))
BLOCKS = ("train", *MODEL_NAMES)


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit``, else ``$LESIONKIT_ISIC2016``, else ``data/isic2016``."""
    return resolve_path(explicit or os.environ.get(DATA_ROOT_VARIABLE) or DEFAULT_DATA_ROOT)


@dataclass(frozen=True)
class RunConfig:
    """One experiment: the data, the two models' training settings and the figures' samples."""

    preset: str
    title: str
    data_root: Path
    output_dir: Path
    image_size: int
    validation: str
    val_fraction: float
    max_images: int | None
    seed: int
    device: str
    sample_ids: tuple[str, ...]
    n_random_samples: int
    test_time_flips: bool
    threshold: float | str
    in_memory_gb: float
    frozen: TrainConfig
    fine_tuned: TrainConfig

    def model(self, name: str) -> TrainConfig:
        """The training settings of model ``name`` (``"frozen"`` or ``"fine_tuned"``)."""
        if name not in MODEL_NAMES:
            raise KeyError(f"model must be one of {MODEL_NAMES}, not {name!r}")
        return getattr(self, name)

    def run_dir(self, name: str) -> Path:
        """Where model ``name`` keeps its history and checkpoints: ``<output_dir>/runs/<name>``."""
        self.model(name)
        return self.output_dir / "runs" / name


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(preset: str | Path) -> Path:
    """``presets/<name>.yaml`` for a name, or the YAML file a path points to."""
    text = str(preset)
    path = resolve_path(text) if text.endswith((".yaml", ".yml")) else PRESET_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(f"Unknown preset {text!r}: no file {display_path(path)}; available: "
                          f"{', '.join(available_presets())} (or the path of a .yaml file)")
    return path


def _merge(into: dict, values: dict, source: str, sources: dict[str, tuple[str, str]]) -> None:
    """Merge ``values`` (from ``source``) into ``into``; refuse unknown keys, record sources.

    A ``train`` setting is written into both model blocks, so a later file's ``train`` wins
    over an earlier file's model block (``overrides={"train": {"decoder_lr": ...}}`` changes
    both models even though report_a.yaml sets each model's own). Within one source the
    model blocks win over its ``train`` block, wherever they are written. ``sources`` maps
    each setting to (the file it came from, the key as written there).
    """
    # within one source: ``train`` first, then the model blocks, then the rest in order
    order = {"train": 0, **{model: 1 for model in MODEL_NAMES}}
    for key, value in sorted(values.items(), key=lambda item: order.get(item[0], 2)):
        if key in BLOCKS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{key}' must be a block of settings, not "
                                  f"{shown(value)}")
            for name, setting in value.items():
                if name not in TRAIN_KEYS:
                    hint = (" (set it at the top level: it applies to the whole run)"
                            if name in ("seed", "device") else "")
                    raise ConfigError(f"{source}: unknown key {shown(f'{key}.{name}')}{hint}; "
                                      f"known keys there: {', '.join(TRAIN_KEYS)}")
                targets = [key] if key != "train" else [
                    model for model in MODEL_NAMES
                    if not (model == "frozen" and name == "encoder_lr")]
                for block in targets:
                    into.setdefault(block, {})[name] = setting
                    sources[f"{block}.{name}"] = (source, f"{key}.{name}")
        elif key in RUN_KEYS:
            into[key] = value
            sources[key] = (source, key)
        else:
            raise ConfigError(f"{source}: unknown key {shown(key)}; known keys: "
                              f"{', '.join(RUN_KEYS + BLOCKS)}")


def _check_run_settings(values: dict, sources: dict[str, tuple[str, str]]) -> None:
    def refuse(key: str, problem: str) -> None:
        source = sources.get(key, ("preset", key))[0]
        raise ConfigError(f"{source}: {key} {problem}")

    for key in RUN_KEYS:
        problem = problem_with(key, values[key])
        if problem:
            refuse(key, problem)
    if values["n_random_samples"] == 0 and not values["sample_ids"]:
        refuse("n_random_samples", "must be >= 1 when sample_ids is empty (the mask figure "
               "needs at least one image), not 0")
    if values["threshold"] == "validation" and values["validation"] != "holdout":
        refuse("threshold", "can be chosen on validation images only with validation: holdout "
               "(choosing it on the test set would flatter the test scores)")


def _train_config(name: str, values: dict, sources: dict[str, tuple[str, str]]
                  ) -> TrainConfig:
    try:
        return TrainConfig(freeze_encoder=name == "frozen", seed=values["seed"],
                           device=values["device"], **values.get(name, {}))
    except InvalidSetting as error:
        lookup = error.key if error.key in ("seed", "device") else f"{name}.{error.key}"
        source, key = sources.get(lookup, ("preset", lookup))
        raise ConfigError(f"{source}: {key} {error.problem}") from error
    except TypeError as error:  # a required training setting is missing everywhere
        raise ConfigError(f"preset: the '{name}' model lacks a setting: {error}") from error


def load_config(preset: str | Path = BASE_PRESET, *, data_root: str | Path | None = None,
                output_dir: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> RunConfig:
    """The checked run configuration of ``preset`` (a name in ``presets/`` or a YAML path).

    ``overrides`` are settings in the presets' own shape, e.g. ``{"train": {"epochs": 5}}``;
    ``data_root`` and ``output_dir`` (default ``reports/<preset>``) are resolved as the module
    docstring says. Raises :class:`ConfigError` naming the file and key of any problem.
    """
    base, path = preset_path(BASE_PRESET), preset_path(preset)
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    for source in dict.fromkeys((base, path)):
        _merge(values, read_settings(source), display_path(source), sources)
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError(f"overrides must be a dict of settings, not {shown(overrides)}")
        _merge(values, copy.deepcopy(overrides), "overrides", sources)
    missing = [key for key in RUN_KEYS if key not in values]
    if missing:
        raise ConfigError(f"{display_path(base)} lacks {', '.join(missing)}")
    _check_run_settings(values, sources)
    name = path.stem
    return RunConfig(
        preset=name, title=values["title"],
        data_root=resolve_data_root(data_root or values["data_root"]),
        output_dir=resolve_path(output_dir or f"reports/{name}"),
        image_size=values["image_size"], validation=values["validation"],
        val_fraction=values["val_fraction"], max_images=values["max_images"],
        seed=values["seed"], device=values["device"], sample_ids=tuple(values["sample_ids"]),
        n_random_samples=values["n_random_samples"],
        test_time_flips=values["test_time_flips"], threshold=values["threshold"],
        in_memory_gb=values["in_memory_gb"], frozen=_train_config("frozen", values, sources),
        fine_tuned=_train_config("fine_tuned", values, sources))
