"""Google Colab set-up: the requirements the notebooks need that Colab lacks.

Every notebook's first cell calls :func:`install_requirements`. Outside Colab it does nothing
(the kit's own set-up script made the environment). In Colab, where the kit was cloned by
hand first (README, "Colab"), it installs ``requirements.txt`` into the running Python and
prints each requirement it installs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


def in_colab() -> bool:
    return "google.colab" in sys.modules


def install_requirements() -> None:
    """In Colab, ``pip install -r requirements.txt`` (printing what); elsewhere nothing."""
    if not in_colab():
        return
    wanted = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    print("Installing into Colab's Python:", ", ".join(w for w in wanted if w))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                   check=True)
