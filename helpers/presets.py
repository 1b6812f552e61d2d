"""Run presets (``presets/*.yaml``) and repository-relative paths.

A preset is the set of notebook parameters for one whole experiment (both models). Values may
name environment variables as ``${NAME:-default}``, so the same file serves a laptop and CI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PRESET_DIR = REPO_ROOT / "presets"
SYNTHETIC_ROOT = REPO_ROOT / "data" / "synthetic"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def resolve_path(path: str | Path) -> Path:
    """A relative path is taken from the repository root (so notebooks run from anywhere)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    return value


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The parameters of preset ``name`` with ``${VAR:-default}`` expanded; adds output_dir."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"Unknown preset {name!r}; available: {', '.join(available_presets())}")
    values = {key: _expand(value) for key, value in yaml.safe_load(path.read_text()).items()}
    values.setdefault("output_dir", f"reports/{name}")
    values["preset"] = name
    return values
