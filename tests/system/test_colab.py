"""The Colab set-up installs only inside Colab, only what is missing, never another version of
what Colab ships, and says what it does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.system import colab

#: Shaped like Colab's runtime (2026-08): its own torch, ipywidgets 7, numpy 2.1; no
#: papermill, nbmake or segmentation-models-pytorch.
COLAB = {"torch": "2.11.0+cu128", "torchvision": "0.26.0+cu128", "ipywidgets": "7.7.1",
         "numpy": "2.1.3", "pandas": "2.2.2", "matplotlib": "3.10.0", "pillow": "11.1.0",
         "scipy": "1.14.1", "tqdm": "4.67.1", "pyyaml": "6.0.2", "ipykernel": "6.17.1",
         "nbconvert": "7.16.4", "tabulate": "0.9.0", "onnx": "1.17.0"}


def test_outside_colab_nothing_is_installed(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("pip ran outside Colab")))
    assert colab.install_requirements() == []


@pytest.fixture
def in_colab(monkeypatch) -> list[tuple[list[str], str]]:
    """Colab's modules and installed versions; each pip call and its constraints file."""
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(colab, "installed_versions", lambda: dict(COLAB))

    def pip(command: list[str], **_: object) -> None:
        calls.append((command, Path(command[command.index("-c") + 1]).read_text()))

    monkeypatch.setattr(subprocess, "run", pip)
    return calls


def test_in_colab_only_missing_packages_are_installed_and_printed(in_colab, capsys) -> None:
    installed = colab.install_requirements()
    (command, constraints), = in_colab
    assert command[command.index("-c") + 2:] == installed
    names = {colab._name(r) for r in installed}
    assert {"papermill", "isic-challenge-scoring", "weasyprint"} <= names
    assert not names & set(COLAB)  # ipywidgets 7.7.1, numpy 2.1, torch... stay as they are
    assert not names & {"segmentation-models-pytorch", "nbmake", "pytest", "jupyterlab"}
    printed = capsys.readouterr().out
    assert "papermill" in printed and "its own packages are kept" in printed
    # every installed version is a constraint, so pip cannot replace one for a dependency
    assert "ipywidgets==7.7.1\n" in constraints and "torch==2.11.0+cu128\n" in constraints


def test_run_twice_the_second_run_installs_nothing(in_colab, monkeypatch, capsys) -> None:
    first = colab.install_requirements()
    monkeypatch.setattr(colab, "installed_versions",
                        lambda: {**COLAB, **{colab._name(r): "1.0" for r in first}})
    assert colab.install_requirements() == []
    assert len(in_colab) == 1
    assert "nothing installed" in capsys.readouterr().out


def test_requirements_for_colab_drop_comments_blanks_and_what_colab_does_not_need() -> None:
    text = ("# a comment\n\ntorch==2.15.0\nTorchVision>=0.19  # pinned\n"
            "torchmetrics>=1\npandas>=2.0  # tables\nisic-challenge-scoring>=5.6\n"
            "segmentation_models_pytorch>=0.3\n")
    assert colab.requirements_for_colab(text) == [
        "torchmetrics>=1", "pandas>=2.0", "isic-challenge-scoring>=5.6"]


def test_names_are_compared_normalised() -> None:
    assert colab.missing(["PyYAML>=6", "isic_challenge_scoring>=5", "Pillow>=10"],
                         {"pyyaml": "6.0", "pillow": "9.0"}) == ["isic_challenge_scoring>=5"]


def test_the_installed_versions_are_this_pythons() -> None:
    versions = colab.installed_versions()
    assert versions["torch"].startswith("2.") and "pyyaml" in versions


def test_versions_pip_cannot_read_are_not_pinned_but_count_as_installed() -> None:
    installed = {"numpy": "2.1.3", "python-apt": "2.4.0+ubuntu4", "distro-info": "1.1build1"}
    assert colab.constraints(installed) == "numpy==2.1.3\npython-apt==2.4.0+ubuntu4\n"
    assert colab.missing(["distro-info>=1"], installed) == []
