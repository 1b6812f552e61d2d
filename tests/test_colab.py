"""The Colab set-up installs only inside Colab, and says what it installs."""

from __future__ import annotations

import subprocess
import sys

from helpers import colab


def test_outside_colab_nothing_is_installed(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("pip ran outside Colab")))
    colab.install_requirements()


def test_in_colab_the_requirements_are_installed_and_printed(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(subprocess, "run", lambda command, **k: calls.append(command))
    colab.install_requirements()
    assert calls and calls[0][-2:] == ["-r", str(colab.REQUIREMENTS)]
    assert "torch>=2.4" in capsys.readouterr().out
