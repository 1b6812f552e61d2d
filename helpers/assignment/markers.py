"""The exercise markers: finding solution and answer regions, and replacing them by stubs.

A code region (in a ``.py`` file or a notebook's code cell) opens with the comment line
``# BEGIN SOLUTION exercise N: title``, has the comment ``# HINT: ...`` (one line a student
can act on) on the next line, then the solution, and closes with ``# END SOLUTION``. A
written answer (a notebook's markdown cell) is the same in HTML comments, invisible when the
notebook is shown: ``<!-- BEGIN ANSWER exercise N: title -->``, ``<!-- HINT: ... -->`` and
``<!-- END ANSWER -->``. One exercise may have several regions, each with its own hint.
(Marker lines are only recognised at the start of a line, so this text is not one.)

The student version keeps the marker lines and replaces what lies between the hint and the
end by a stub: ``raise NotImplementedError("Exercise N (title): hint")`` at the marker's
indentation, or for an answer a one-line prompt. The markers are comments, so the
instructor's kit runs as if they were not there.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.errors import STUB_PREFIX, MarkerError

CODE_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION exercise (?P<number>\d+): "
                        r"(?P<title>\S.*?)\s*$")
CODE_HINT = re.compile(r"^[ \t]*# HINT: (?P<hint>\S.*?)\s*$")
CODE_END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
#: A line that means to be a code marker (matched or not): a comment opening with the word.
CODE_MARKER_LIKE = re.compile(r"^[ \t]*#\s*(BEGIN|END)\s+SOLUTION\b")

ANSWER_BEGIN = re.compile(r"^(?P<indent>)<!-- BEGIN ANSWER exercise (?P<number>\d+): "
                          r"(?P<title>\S.*?)\s*-->\s*$")
ANSWER_HINT = re.compile(r"^<!-- HINT: (?P<hint>\S.*?)\s*-->\s*$")
ANSWER_END = re.compile(r"^<!-- END ANSWER -->\s*$")
ANSWER_MARKER_LIKE = re.compile(r"^\s*<!--\s*(BEGIN|END)\s+ANSWER\b")

#: The stub's longest line (the kit's line length, ruff's E501).
LINE_LENGTH = 100


@dataclass(frozen=True)
class Region:
    """One marked region: where it is, its exercise, and the lines between hint and end."""

    file: str  # the path inside the kit, with forward slashes
    cell: int | None  # the notebook cell's index, or None in a .py file
    begin: int  # 0-based index of the BEGIN line in the file's (or the cell's) lines
    end: int  # 0-based index of the END line
    exercise: int
    title: str
    hint: str
    indent: str
    kind: str  # "code" or "answer"
    body: tuple[str, ...]

    @property
    def where(self) -> str:
        """``file:line`` (1-based), with the cell for a notebook."""
        cell = f" cell {self.cell}" if self.cell is not None else ""
        return f"{self.file}{cell}:{self.begin + 1}"

    @property
    def message(self) -> str:
        """The stub's message (a code region) or the prompt's text (an answer)."""
        return f"{STUB_PREFIX}{self.exercise} ({self.title}): {self.hint}"

    def stub(self) -> list[str]:
        """The lines that replace the body in the student version."""
        if self.kind == "answer":
            return [f"*{self.message}. Write your answer here, in place of this line.*"]
        return stub_lines(self.message, self.indent)

    def is_stub(self) -> bool:
        """Whether the body is still the stub (an exercise not attempted)."""
        return normalised(self.body) == normalised(tuple(self.stub()))


def stub_lines(message: str, indent: str) -> list[str]:
    """``raise NotImplementedError(message)`` at ``indent``, wrapped to ``LINE_LENGTH``."""
    literal = json.dumps(message, ensure_ascii=False)
    one_line = f"{indent}raise NotImplementedError({literal})"
    if len(one_line) <= LINE_LENGTH:
        return [one_line]
    room = LINE_LENGTH - len(indent) - 4 - 3  # the continuation's indent, quotes and ")"
    chunks, chunk = [], ""
    for word in message.split(" "):
        candidate = f"{chunk} {word}" if chunk else word
        if chunk and len(json.dumps(candidate + " ", ensure_ascii=False)) - 2 > room:
            chunks.append(chunk + " ")
            chunk = word
        else:
            chunk = candidate
    chunks.append(chunk)
    lines = [f"{indent}raise NotImplementedError("]
    lines += [f"{indent}    {json.dumps(part, ensure_ascii=False)}" for part in chunks]
    lines[-1] += ")"
    return lines


def normalised(lines: tuple[str, ...] | list[str]) -> str:
    """Code without comment lines, blank lines and indentation: what two copies share when
    they are the same solution laid out differently."""
    kept = [line.strip() for line in lines]
    return "\n".join(line for line in kept if line and not line.startswith(("#", "<!--")))


def find_regions(text: str, file: str, kind: str = "code", cell: int | None = None
                 ) -> list[Region]:
    """The regions of ``text`` (a file's or a cell's); a :class:`MarkerError` naming the file
    and line for a region without an end or a hint, a nested one, or a malformed marker."""
    begin_re, hint_re, end_re, like_re = (
        (CODE_BEGIN, CODE_HINT, CODE_END, CODE_MARKER_LIKE) if kind == "code"
        else (ANSWER_BEGIN, ANSWER_HINT, ANSWER_END, ANSWER_MARKER_LIKE))
    where = f"{file} cell {cell}" if cell is not None else file
    lines = text.splitlines()
    regions: list[Region] = []
    opened: tuple[int, re.Match[str]] | None = None
    for index, line in enumerate(lines):
        begin, end = begin_re.match(line), end_re.match(line)
        if not begin and not end and like_re.match(line):
            raise MarkerError(f"{where}:{index + 1}: malformed marker {line.strip()!r}; write "
                              f"{_example(kind)}")
        if begin:
            if opened:
                raise MarkerError(f"{where}:{index + 1}: a region begins inside the region "
                                  f"begun on line {opened[0] + 1}; regions cannot be nested")
            hint = hint_re.match(lines[index + 1]) if index + 1 < len(lines) else None
            if not hint:
                raise MarkerError(f"{where}:{index + 2}: the line after a BEGIN marker must be "
                                  "its one-line hint (# HINT: ... or <!-- HINT: ... -->)")
            opened = (index, begin)
        elif end:
            if not opened:
                raise MarkerError(f"{where}:{index + 1}: an END marker without a BEGIN")
            start, match = opened
            regions.append(Region(
                file=file, cell=cell, begin=start, end=index, exercise=int(match["number"]),
                title=match["title"], hint=hint_re.match(lines[start + 1])["hint"],
                indent=match["indent"], kind=kind, body=tuple(lines[start + 2:index])))
            opened = None
    if opened:
        raise MarkerError(f"{where}:{opened[0] + 1}: BEGIN marker without an END marker")
    return regions


def _example(kind: str) -> str:
    if kind == "code":
        return "'# BEGIN SOLUTION exercise N: title' ... '# END SOLUTION'"
    return "'<!-- BEGIN ANSWER exercise N: title -->' ... '<!-- END ANSWER -->'"


def replace_regions(text: str, regions: list[Region]) -> str:
    """``text`` with each region's body replaced by its stub (markers and hint kept)."""
    lines = text.splitlines()
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        lines[region.begin + 2:region.end] = region.stub()
    ending = "\n" if text.endswith("\n") else ""
    return "\n".join(lines) + ending


def notebook_regions(notebook: nbformat.NotebookNode, file: str) -> list[Region]:
    """The regions of every cell of ``notebook``: code cells' and markdown cells' answers."""
    regions = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type in ("code", "markdown"):
            kind = "code" if cell.cell_type == "code" else "answer"
            regions += find_regions(cell.source, file, kind, cell=index)
    return regions


def read_notebook(path: Path, file: str) -> nbformat.NotebookNode:
    """A notebook read with nbformat; a :class:`MarkerError` naming ``file`` if it is not one."""
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise MarkerError(f"{file}: not a notebook nbformat can read ({error})") from error


def file_regions(path: Path, file: str) -> list[Region]:
    """The regions of one ``.py`` or ``.ipynb`` file (none in other files)."""
    if path.suffix == ".py":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise MarkerError(f"{file}: not UTF-8 text ({error})") from error
        return find_regions(text, file)
    if path.suffix == ".ipynb":
        return notebook_regions(read_notebook(path, file), file)
    return []


def solution_fingerprint(regions: list[Region]) -> str | None:
    """A hash of the code written into the regions (comments and layout ignored), or None
    when every region still holds its stub: two submissions with the same fingerprint have
    the same solution code."""
    solved = [r for r in regions if r.kind == "code" and not r.is_stub()]
    if not solved:
        return None
    digest = hashlib.sha256()
    for region in sorted(solved, key=lambda r: (r.file, r.cell or 0, r.begin)):
        digest.update(f"{region.file}|{region.exercise}\n{normalised(region.body)}\n".encode())
    return digest.hexdigest()[:16]
