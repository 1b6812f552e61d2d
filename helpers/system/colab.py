"""Google Colab set-up: the packages the notebooks need that Colab lacks, and nothing else.

Every notebook's first cell calls :func:`install_requirements`. Outside Colab it does nothing
(the kit's own set-up script made the environment). In Colab it installs only the
requirements that are missing, and never replaces a version Colab ships: every installed
distribution is pinned to its version as a pip constraint, so a missing package that would
need another numpy, ipywidgets or torch is refused by pip rather than upgrading one under the
running kernel (which breaks it). So a Colab run uses Colab's torch, numpy, ipywidgets...,
not the releases the committed reports were made with. The packages only the benchmark, the
tests and the local front end use are not installed there.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers.paths import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements.txt"
#: Requirements left out in Colab: what it has its own of (torch, torchvision, the front
#: end), and what only the benchmark, the tests and the lint use.
NOT_IN_COLAB = ("torch", "torchvision", "jupyterlab", "segmentation-models-pytorch", "pytest",
                "nbmake", "ruff")


def in_colab() -> bool:
    return "google.colab" in sys.modules


def _name(requirement: str) -> str:
    """The distribution name of a requirement line, normalised (PEP 503)."""
    name = re.split(r"[\s<>=!~\[;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_for_colab(text: str) -> list[str]:
    """The requirement lines of ``text`` without comments, blanks and ``NOT_IN_COLAB``."""
    wanted = []
    for line in text.splitlines():
        requirement = line.split("#")[0].strip()
        if requirement and _name(requirement) not in NOT_IN_COLAB:
            wanted.append(requirement)
    return wanted


#: A PEP 440 version as pip reads it (Debian's "1.1build1" is not one: pip refuses it).
_VERSION = re.compile(r"v?\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?",
                      re.IGNORECASE)


def installed_versions(path: list[str] | None = None) -> dict[str, str]:
    """Every distribution installed in this Python (or in the folders ``path``), by
    normalised name: the copy Python imports where there are several (the first on
    ``sys.path``)."""
    versions: dict[str, str] = {}
    found = importlib.metadata.distributions(**({} if path is None else {"path": path}))
    for distribution in found:  # in sys.path order
        name = distribution.metadata["Name"]
        if name:
            versions.setdefault(_name(name), distribution.version or "")
    return versions


def constraints(installed: dict[str, str]) -> str:
    """The installed versions as pip constraints (``name==version``), leaving out versions
    pip cannot read (such a package is still installed, so it is not asked for)."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(installed.items())
                   if _VERSION.fullmatch(version))


def missing(requirements: list[str], installed: dict[str, str]) -> list[str]:
    """The ``requirements`` whose distribution is not installed at all (an installed one is
    kept at its version, whatever the requirement asks)."""
    return [r for r in requirements if _name(r) not in installed]


def pip_command(wanted: list[str], pinned: Path) -> list[str]:
    """pip installing ``wanted`` with the constraints file ``pinned`` (what is installed)."""
    return [sys.executable, "-m", "pip", "install", "-q", "-c", str(pinned), *wanted]


def install_requirements() -> list[str]:
    """In Colab, ``pip install`` the missing requirements, the installed versions pinned, and
    print what was done; return what was installed. Elsewhere nothing. Run twice, the second
    run installs nothing."""
    if not in_colab():
        return []
    installed = installed_versions()
    wanted = missing(requirements_for_colab(REQUIREMENTS.read_text()), installed)
    if not wanted:
        print("Colab has every package the notebooks need; nothing installed.")
        return []
    print("Installing what Colab lacks (its own packages are kept at their versions):",
          ", ".join(wanted))
    with tempfile.TemporaryDirectory() as folder:
        pinned = Path(folder) / "installed.txt"
        pinned.write_text(constraints(installed))
        subprocess.run(pip_command(wanted, pinned), check=True)
    return wanted
