"""The student version of the kit: ``python -m helpers.assignment student --out DIR``.

It copies the kit's files (``git ls-files`` in a git checkout, else a walk that skips the
virtual environment, data, reports and caches), replaces every solution region by its stub
(:mod:`helpers.assignment.markers`), strips the notebooks' outputs, leaves out what only the
instructor needs (``INSTRUCTOR_ONLY``) and writes ``ASSIGNMENT.md``. The same kit gives the
same bytes every time: a sorted file list and no dates.
"""

from __future__ import annotations

import ast
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import nbformat

from helpers.assignment.markers import Region, file_regions, read_notebook, replace_regions
from helpers.errors import MarkerError, OutputFolderError
from helpers.system.atomic import write_bytes
from helpers.system.writable import output_folder

#: Left out of the student version: committed results, hidden checks, the kit's own tests
#: (the student version's test command runs ``checks/``), benchmarks and CI.
INSTRUCTOR_ONLY = ("reports/", "checks_hidden/", "tests/", "benchmarks/", ".ci/")
#: Never copied by the walk outside git: environments, data, outputs and caches.
WALK_SKIPS = {".git", ".venv", "data", "reports", "__pycache__", ".pytest_cache",
              ".ruff_cache", ".ipynb_checkpoints", "grades"}
PUBLIC_CHECKS = "checks"
HIDDEN_CHECKS = "checks_hidden"

#: The student version's ``scripts/test.sh``: its exercise checks instead of the kit's tests.
STUDENT_TEST_SCRIPT = """#!/usr/bin/env bash
# The student version's test command: set-up, lint, and the checks of your exercises
# (ASSIGNMENT.md). Each failing check says what is wrong; a stub that is still there says
# its exercise's hint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest checks "$@"
"""

README_NOTE = ("> **The student version.** Some functions and one notebook cell are exercises: "
               "[ASSIGNMENT.md](ASSIGNMENT.md) says which, what to hand in, and how "
               "`bash scripts/test.sh` checks them.\n")


def kit_files(root: Path) -> list[str]:
    """The kit's files, as sorted paths relative to ``root`` with forward slashes."""
    if (root / ".git").exists():
        try:
            listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True,
                                    capture_output=True).stdout.decode()
            files = [name for name in listed.split("\0") if name]
            return sorted(name for name in files if (root / name).is_file())
        except (OSError, subprocess.CalledProcessError):
            pass  # no git on this machine: walk the folder instead
    return sorted(_walk(root))


def _walk(root: Path) -> Iterable[str]:
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(s for s in subfolders if s not in WALK_SKIPS
                               and not (here / s).is_symlink())
        for name in names:
            path = here / name
            if path.is_file() and not path.is_symlink() and not name.endswith((".pyc",)):
                yield path.relative_to(root).as_posix()
    # data/README.md says where the data goes: keep the files directly in data/
    data = root / "data"
    if data.is_dir():
        yield from (f"data/{p.name}" for p in sorted(data.iterdir()) if p.is_file())


def student_files(root: Path) -> list[str]:
    """The kit's files that go into the student version."""
    return [name for name in kit_files(root) if not name.startswith(INSTRUCTOR_ONLY)]


def all_regions(root: Path, files: list[str]) -> list[Region]:
    """Every region in ``files`` (a :class:`MarkerError` names a bad marker's file and line)."""
    regions = []
    for name in files:
        regions += file_regions(root / name, name)
    return regions


def student_content(root: Path, name: str, regions: list[Region]) -> bytes:
    """What file ``name`` holds in the student version."""
    path = root / name
    if name == "scripts/test.sh":
        return STUDENT_TEST_SCRIPT.encode()
    if name.endswith(".ipynb"):
        notebook = read_notebook(path, name)
        for index, cell in enumerate(notebook.cells):
            own = [r for r in regions if r.cell == index]
            if own:
                cell.source = replace_regions(cell.source, own)
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        text = nbformat.writes(notebook)
        return (text if text.endswith("\n") else text + "\n").encode()
    if regions:
        return replace_regions(path.read_text(encoding="utf-8"), regions).encode()
    if name == "README.md":
        title, _, rest = path.read_text(encoding="utf-8").partition("\n\n")
        return f"{title}\n\n{README_NOTE}\n{rest}".encode()
    return path.read_bytes()


def enclosing_functions(root: Path, regions: list[Region]) -> dict[str, str]:
    """For each region of a ``.py`` file (by ``Region.where``), the function it lies in, as
    ``Class.method`` or ``function``."""
    found = {}
    for name in sorted({r.file for r in regions if r.cell is None}):
        tree = ast.parse((root / name).read_text(encoding="utf-8"), name)
        spans = []
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    owner = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
                    spans.append((child.lineno, child.end_lineno or child.lineno,
                                  owner + child.name))
        for region in (r for r in regions if r.file == name and r.cell is None):
            inside = [s for s in spans if s[0] <= region.begin + 1 <= s[1]]
            if inside:  # the innermost: the one that starts last
                found[region.where] = max(inside)[2]
    return found


def assignment_text(regions: list[Region], functions: dict[str, str]) -> str:
    """ASSIGNMENT.md: the exercises with where they are (``functions``: see
    :func:`enclosing_functions`) and their hints, how to check them, and what to hand in."""
    lines = ["# The assignment", "",
             "Each exercise is a marked region: between `# BEGIN SOLUTION` (with its `# HINT:`)",
             "and `# END SOLUTION` stands `raise NotImplementedError(...)`. Replace that line",
             "by your code and keep the markers. The written answer goes in the notebook cell",
             "between `<!-- BEGIN ANSWER -->` and `<!-- END ANSWER -->`, in place of the prompt.",
             "", "## What to implement", "",
             "| exercise | what | where | hint |", "|---|---|---|---|"]
    for region in sorted(regions, key=lambda r: (r.exercise, r.file, r.cell or 0, r.begin)):
        place = f"`{region.file}`" + (f", cell {region.cell}" if region.cell is not None
                                       else f", `{functions.get(region.where, '?')}`")
        hint = region.hint.replace("|", "\\|")
        lines.append(f"| {region.exercise} | {region.title} | {place} | {hint} |")
    checked = sorted({r.exercise for r in regions if r.kind == "code"})
    by_hand = sorted({r.exercise for r in regions if r.kind == "answer"})
    lines += ["", "## Checking your work", "",
              "```bash",
              "bash scripts/test.sh                 # set-up, lint and pytest checks/",
              ".venv/bin/python -m pytest checks    # the checks alone, once set up",
              "bash scripts/run.sh                  # the notebooks end to end (demo preset)",
              "```", "",
              f"`checks/` holds one test file per code exercise ({_numbers(checked)}). A check "
              "that fails says what is wrong: an unsolved exercise gives its hint, a wrong one "
              "the shape, count or value expected. `bash scripts/run.sh` stops at the first "
              "unsolved exercise with its hint. The instructor also runs hidden checks, so "
              "pass the public ones by solving the exercise, not by fitting the tests."]
    if by_hand:
        lines += ["", f"Exercise {_numbers(by_hand)} is read and graded by hand."]
    lines += ["", "## What to hand in", "",
              "1. `report.pdf`: run `bash scripts/run.sh report_a /path/to/isic2016` and hand "
              "in `reports/report_a/report.pdf`.",
              "2. A Colab link to your copy of the kit, with your code and your answer in it "
              "([Colab](docs/colab.md)).", ""]
    return "\n".join(lines)


def _numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def check_out_folder(out: Path, root: Path) -> Path:
    """``out`` as the student version's folder: outside the kit, absent or empty, writable;
    else an :class:`OutputFolderError` saying which."""
    resolved = out.resolve()
    if resolved.is_relative_to(root.resolve()):
        raise OutputFolderError(f"--out {out} is inside the kit ({root}); choose a folder "
                                "outside it")
    if resolved.exists() and (not resolved.is_dir() or any(resolved.iterdir())):
        raise OutputFolderError(f"--out {out} is not an empty folder; choose a new one")
    return output_folder(out, what="student version's folder")


def write_student_version(root: Path, out: Path) -> list[Region]:
    """Write the student version of the kit at ``root`` into ``out``; return its regions."""
    check_out_folder(out, root)
    files = student_files(root)
    regions = all_regions(root, files)
    if not regions:
        raise MarkerError(f"{root} has no exercise markers: nothing to leave to students")
    for name in files:
        own = [r for r in regions if r.file == name]
        write_bytes(out / name, student_content(root, name, own))
        os.chmod(out / name, (root / name).stat().st_mode & 0o755)
    text = assignment_text(regions, enclosing_functions(root, regions))
    write_bytes(out / "ASSIGNMENT.md", text.encode())
    return regions
