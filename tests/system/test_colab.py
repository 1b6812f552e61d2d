"""The Colab set-up installs only inside Colab, says what it installs, and keeps Colab's torch."""

from __future__ import annotations

import subprocess
import sys

from helpers.system import colab


def test_outside_colab_nothing_is_installed(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("pip ran outside Colab")))
    colab.install_requirements()


def test_in_colab_the_requirements_but_torch_are_installed_and_printed(
        monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(subprocess, "run", lambda command, **k: calls.append(command))
    colab.install_requirements()
    installed = calls[0][calls[0].index("install") + 2:]
    assert installed == colab.requirements_for_colab(colab.REQUIREMENTS.read_text())
    assert any(r.startswith("papermill") for r in installed)
    assert not any(r.startswith(("torch=", "torch>", "torchvision")) for r in installed)
    printed = capsys.readouterr().out
    assert "papermill" in printed and "keeping its torch" in printed


def test_requirements_for_colab_drop_comments_blanks_and_colabs_own_packages() -> None:
    text = ("# a comment\n\ntorch==2.15.0\nTorchVision>=0.19  # pinned\n"
            "torchmetrics>=1\npandas>=2.0  # tables\nisic-challenge-scoring>=5.6\n")
    assert colab.requirements_for_colab(text) == [
        "torchmetrics>=1", "pandas>=2.0", "isic-challenge-scoring>=5.6"]
