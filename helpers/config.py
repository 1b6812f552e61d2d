"""The run configuration: every setting of one experiment, typed, checked and frozen.

A run (both models of one experiment) is described by a preset in ``presets/``.
``presets/report_a.yaml`` is the base: it lists every setting, with report A's values. Every
other preset lists only what it changes, so ``report_b.yaml`` reads as the difference between
the two reports. :func:`load_config` merges the base, the preset and any overrides and returns
a frozen :class:`RunConfig`. A key it does not know, or a value that cannot work, stops it with
a message naming the file (or ``overrides``) and the key, before any notebook runs.

The two models are blocks named after what they are, ``frozen`` (the reports' "Model 1") and
``fine_tuned`` ("Model 2"); their keys are :class:`helpers.train.TrainConfig`'s field names,
and a ``train`` block holds what both share.

The data folder is found the same way everywhere: an explicit value (a ``data_root``
argument, notebook parameter or ``--data-root``; the demo presets name their SYNTHETIC set
themselves), else ``$LESIONKIT_ISIC2016``, else ``data/isic2016`` in the repository.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers.paths import REPO_ROOT, display_path, resolve_path
from helpers.train import InvalidSetting, TrainConfig

PRESET_DIR = REPO_ROOT / "presets"
BASE_PRESET = "report_a"
DATA_ROOT_VARIABLE = "LESIONKIT_ISIC2016"
DEFAULT_DATA_ROOT = "data/isic2016"

#: The two models of every run, in the reports' order, with the reports' names for them.
MODEL_NAMES = ("frozen", "fine_tuned")
MODEL_LABELS = {"frozen": "Model 1", "fine_tuned": "Model 2"}
VALIDATION_PRACTICES = ("holdout", "test")

#: Keys of the top level of a preset (besides the ``train`` and model blocks).
RUN_KEYS = ("title", "data_root", "image_size", "validation", "val_fraction", "max_images",
            "seed", "device", "sample_ids", "n_random_samples", "test_time_flips", "threshold",
            "in_memory_gb")
#: Keys a ``train`` or model block may set: TrainConfig's fields less those the run decides.
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                   if f.name not in ("freeze_encoder", "seed", "device"))
BLOCKS = ("train", *MODEL_NAMES)


class ConfigError(ValueError):
    """A preset or override that cannot be used; the message names the file and the key."""


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


class _Loader(yaml.SafeLoader):
    """YAML as people write numbers: ``1e-3`` is a float too (plain YAML 1.1 wants ``1.0e-3``
    and would read ``1e-3`` as text); and a key written twice in one mapping is an error
    (plain YAML keeps the last one and silently drops the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: YAML's own merge
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # PyYAML's own error says what is wrong with such a key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} twice (also on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))


def _read(path: Path) -> dict:
    try:
        values = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        raise ConfigError(f"{display_path(path)} is not valid YAML: {error}") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{display_path(path)} must be a mapping of settings, not "
                          f"{type(values).__name__}")
    return values


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
                raise ConfigError(f"{source}: '{key}' must be a block of settings, not {value!r}")
            for name, setting in value.items():
                if name not in TRAIN_KEYS:
                    hint = (" (set it at the top level: it applies to the whole run)"
                            if name in ("seed", "device") else "")
                    raise ConfigError(f"{source}: unknown key '{key}.{name}'{hint}; "
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
            raise ConfigError(f"{source}: unknown key '{key}'; known keys: "
                              f"{', '.join(RUN_KEYS + BLOCKS)}")


def _check_run_settings(values: dict, sources: dict[str, tuple[str, str]]) -> None:
    def refuse(key: str, problem: str) -> None:
        source = sources.get(key, ("preset", key))[0]
        raise ConfigError(f"{source}: {key} {problem}, not {values[key]!r}")

    size = values["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 32:
        refuse("image_size", "must be a positive multiple of 32 (32, 64, ..., 128, 256)")
    if values["validation"] not in VALIDATION_PRACTICES:
        refuse("validation", f"must be one of {', '.join(VALIDATION_PRACTICES)}")
    fraction = values["val_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
            or not 0 < fraction < 1:
        refuse("val_fraction", "must be a number between 0 and 1")
    limit = values["max_images"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        refuse("max_images", "must be null or a whole number >= 1")
    count = values["n_random_samples"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        refuse("n_random_samples", "must be a whole number >= 0")
    if not isinstance(values["sample_ids"], list) or not all(
            isinstance(i, str) for i in values["sample_ids"]):
        refuse("sample_ids", "must be a list of image ids")
    if count == 0 and not values["sample_ids"]:
        refuse("n_random_samples", "must be >= 1 when sample_ids is empty (the mask figure "
               "needs at least one image)")
    if not isinstance(values["test_time_flips"], bool):
        refuse("test_time_flips", "must be true or false")
    threshold = values["threshold"]
    if threshold != "validation" and (isinstance(threshold, bool) or not isinstance(
            threshold, int | float) or not 0 < threshold < 1):
        refuse("threshold", "must be a number between 0 and 1, or \"validation\"")
    if threshold == "validation" and values["validation"] != "holdout":
        refuse("threshold", "can be chosen on validation images only with validation: holdout "
               "(choosing it on the test set would flatter the test scores)")
    memory = values["in_memory_gb"]
    if isinstance(memory, bool) or not isinstance(memory, int | float) or not memory >= 0:
        refuse("in_memory_gb", "must be a number of GiB >= 0")
    if not isinstance(values["title"], str) or not values["title"]:
        refuse("title", "must be a non-empty text")


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
        _merge(values, _read(source), display_path(source), sources)
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError(f"overrides must be a dict of settings, not {overrides!r}")
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
