"""The documentation: README.md stays a front page, every link and every command it shows
works, the docs index matches docs/, and the speed tables are generated, not copied."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
#: ``-m helpers NAME`` (a command of the entry point) and ``-m helpers.X`` (a module run).
COMMAND = re.compile(r"-m helpers\s+([a-z][\w-]*)")
MODULE = re.compile(r"-m helpers\.([\w.]+)")


def pages() -> list[Path]:
    """README.md and every Markdown page in docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """``text`` without code blocks, inline code and comments: where links are meant."""
    return INLINE_CODE.sub("", FENCE.sub("", COMMENT.sub("", text)))


def links(page: Path) -> list[str]:
    """The targets of the Markdown links and images of ``page``."""
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of ``text`` (up to the next ``## `` heading)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match[1]


def load_speed_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("speed_tables",
                                                  REPO / "benchmarks" / "speed_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path) -> None:
    """A relative link names an existing file, and an anchor a heading of that file."""
    broken = []
    for target in filter(is_relative, links(page)):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links: {', '.join(broken)}"


def test_readme_is_a_front_page_of_at_most_200_lines() -> None:
    """The README stays short; the details live in docs/."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_docs_index_lists_exactly_the_files_in_docs() -> None:
    """Every page the README's index names exists, and every file in docs/ is in it."""
    index = section(README.read_text(encoding="utf-8"), "Documentation")
    listed = {Path(t).name for t in LINK.findall(prose(index)) if t.startswith("docs/")}
    present = {p.name for p in DOCS.iterdir() if p.is_file()}
    assert listed == present, (f"listed but missing: {sorted(listed - present)}; "
                               f"in docs/ but not listed: {sorted(present - listed)}")


def test_every_page_starts_by_saying_what_it_is_for() -> None:
    """Each docs page opens, after its title, with what a reader comes for."""
    lacking = [p.name for p in sorted(DOCS.glob("*.md"))
               if not p.read_text(encoding="utf-8").split("\n\n", 2)[1].startswith(
                   "**What this page is for.**")]
    assert not lacking, f"pages without a 'What this page is for' paragraph: {lacking}"


def test_every_command_shown_is_one_the_kit_has() -> None:
    """``python -m helpers NAME`` names a command of the entry point, and the only modules
    run as ``python -m helpers.X`` are ``helpers.report`` and ``helpers.assignment``."""
    from helpers.__main__ import COMMANDS

    unknown, modules = [], []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        unknown += [f"{page.name}: {n}" for n in COMMAND.findall(text) if n not in COMMANDS]
        modules += [f"{page.name}: helpers.{m}" for m in MODULE.findall(text)
                    if m not in ("report", "assignment")]
    assert not unknown, f"unknown commands: {unknown}; known: {sorted(COMMANDS)}"
    assert not modules, f"run as modules (use `python -m helpers NAME`): {modules}"


def test_speed_page_holds_the_tables_the_benchmark_json_makes() -> None:
    """docs/speed.md's tables are what speed_tables.py renders from the committed JSON."""
    speed_tables = load_speed_tables()
    benchmarks = REPO / "reports" / "benchmarks"
    expected = speed_tables.tables(json.loads((benchmarks / "cpu.json").read_text()),
                                   json.loads((benchmarks / "gpu.json").read_text()))
    page = (DOCS / "speed.md").read_text(encoding="utf-8")
    shown = page.split(speed_tables.BEGIN, 1)[1].split(speed_tables.END, 1)[0]
    assert shown == "\n" + expected, ("docs/speed.md's tables differ from the JSON: run "
                                      "benchmarks/speed_tables.py as docs/speed.md says")
