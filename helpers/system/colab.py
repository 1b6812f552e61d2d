"""Google Colab set-up: the requirements the notebooks need that Colab lacks.

Every notebook's first cell calls :func:`install_requirements`. Outside Colab it does nothing
(the kit's own set-up script made the environment). In Colab, where the kit was cloned by
hand first (docs/colab.md), it installs ``requirements.txt`` into the running Python and
prints each requirement it installs. Colab's own torch and torchvision are kept: they are
built for Colab's GPU, and replacing torch under a running kernel breaks the kernel. So a
Colab run uses Colab's torch, not the release the committed reports were made with.
"""

from __future__ import annotations

import re
import subprocess
import sys

from helpers.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements.txt"
KEPT_IN_COLAB = ("torch", "torchvision")


def in_colab() -> bool:
    return "google.colab" in sys.modules


def requirements_for_colab(text: str) -> list[str]:
    """The requirement lines of ``text`` without comments, blanks and the packages Colab keeps."""
    wanted = []
    for line in text.splitlines():
        requirement = line.split("#")[0].strip()
        name = re.split(r"[\s<>=!~\[;@]", requirement, maxsplit=1)[0].lower()
        if requirement and name not in KEPT_IN_COLAB:
            wanted.append(requirement)
    return wanted


def install_requirements() -> None:
    """In Colab, ``pip install`` the requirements but Colab's torch (printing what); elsewhere
    nothing."""
    if not in_colab():
        return
    wanted = requirements_for_colab(REQUIREMENTS.read_text())
    print("Installing into Colab's Python (keeping its torch and torchvision):", ", ".join(wanted))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *wanted], check=True)
