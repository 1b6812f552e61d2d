"""Shared fixtures: a small SYNTHETIC data set, and the real ISIC data when it is available.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.synthetic import write_synthetic_isic2016

REAL_DATA_VARIABLE = "LESIONKIT_ISIC2016"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SYNTHETIC ISIC-2016-layout data set: 24 training and 8 test images."""
    return write_synthetic_isic2016(tmp_path_factory.mktemp("synthetic"), n_train=24, n_test=8)


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real ISIC 2016 Part 1 folder named by $LESIONKIT_ISIC2016, or skip."""
    value = os.environ.get(REAL_DATA_VARIABLE)
    if not value:
        pytest.skip(f"real-data test: set {REAL_DATA_VARIABLE} to an ISIC 2016 Part 1 folder")
    root = Path(value)
    if not root.is_dir():
        pytest.fail(f"{REAL_DATA_VARIABLE}={value} is not a folder")
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep the tests' decode cache out of the repository's data/cache."""
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
