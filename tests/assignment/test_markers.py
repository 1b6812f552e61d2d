"""The exercise markers: regions found, stubs written in their place, bad markers named."""

from __future__ import annotations

import nbformat
import pytest

from helpers.assignment.markers import (
    LINE_LENGTH,
    file_regions,
    find_regions,
    replace_regions,
    solution_fingerprint,
)
from helpers.errors import MarkerError

# Marker lines are built from pieces so that this file holds no region of its own.
BEGIN, END, HINT = "# BEGIN " + "SOLUTION", "# END " + "SOLUTION", "# HINT:"


def source(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_a_region_becomes_a_stub_at_its_indentation_with_the_markers_kept() -> None:
    text = source("def f(x):", f"    {BEGIN} exercise 7: doubling", f"    {HINT} times two",
                  "    y = 2 * x", "    return y", f"    {END}", "")
    regions = find_regions(text, "f.py")
    assert [(r.exercise, r.title, r.hint, r.indent) for r in regions] == [
        (7, "doubling", "times two", "    ")]
    stubbed = replace_regions(text, regions)
    assert stubbed == source("def f(x):", f"    {BEGIN} exercise 7: doubling",
                             f"    {HINT} times two",
                             '    raise NotImplementedError("Exercise 7 (doubling): times two")',
                             f"    {END}", "")
    namespace: dict = {}
    exec(stubbed, namespace)  # the student version still compiles
    with pytest.raises(NotImplementedError, match=r"^Exercise 7 \(doubling\): times two$"):
        namespace["f"](1)
    assert find_regions(stubbed, "f.py")[0].is_stub()
    assert not regions[0].is_stub()


def test_a_long_stub_is_wrapped_within_the_line_length() -> None:
    hint = "a hint with quotes \" and many words " * 4
    text = source("class A:", "    def g(self):", f"        {BEGIN} exercise 2: long one",
                  f"        {HINT} {hint.strip()}", "        pass", f"        {END}")
    stubbed = replace_regions(text, find_regions(text, "g.py"))
    stub = [line for line in stubbed.splitlines() if not line.strip().startswith("#")]
    assert len(stub) > 3 and max(len(line) for line in stub) <= LINE_LENGTH
    namespace: dict = {}
    exec(stubbed, namespace)
    with pytest.raises(NotImplementedError) as raised:
        namespace["A"]().g()
    assert str(raised.value) == f"Exercise 2 (long one): {hint.strip()}"


@pytest.mark.parametrize("lines, problem", [
    ([f"{BEGIN} exercise 1: a", f"{HINT} h", "x = 1"], "f.py:1: BEGIN marker without an END"),
    ([f"{BEGIN} exercise 1: a", f"{HINT} h", f"{BEGIN} exercise 2: b", f"{HINT} h", END, END],
     "f.py:3: a region begins inside the region begun on line 1"),
    (["x = 1", END], "f.py:2: an END marker without a BEGIN"),
    ([f"{BEGIN} exercise 1: a", "x = 1", END], "f.py:2: the line after a BEGIN marker"),
    (["# BEGIN " + "SOLUTION", "x = 1", END], "f.py:1: malformed marker"),
])
def test_bad_markers_are_named_with_file_and_line(lines: list[str], problem: str) -> None:
    with pytest.raises(MarkerError, match="^" + problem.replace("(", r"\(")):
        find_regions(source(*lines), "f.py")


def test_notebook_code_cells_and_markdown_answers(tmp_path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("<!-- BEGIN " + "ANSWER exercise 5: why -->\n"
                                      "<!-- HINT: say why -->\nBecause.\n<!-- END ANSWER -->"),
        nbformat.v4.new_code_cell(source(f"{BEGIN} exercise 6: sum", f"{HINT} add",
                                         "total = 1 + 2", END)),
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    regions = file_regions(path, "n.ipynb")
    assert [(r.kind, r.cell, r.exercise) for r in regions] == [("answer", 0, 5), ("code", 1, 6)]
    answer = replace_regions(notebook.cells[0].source, [regions[0]])
    assert "Because." not in answer and "Exercise 5 (why): say why" in answer
    assert file_regions(path.with_suffix(".md"), "n.md") == []  # other files hold none


def test_the_fingerprint_ignores_layout_and_comments_but_not_code() -> None:
    def regions(*body: str) -> list:
        return find_regions(source(f"{BEGIN} exercise 1: a", f"{HINT} h", *body, END), "f.py")

    stub = replace_regions(source(f"{BEGIN} exercise 1: a", f"{HINT} h", "x = 1", END),
                           regions("x = 1"))
    assert solution_fingerprint(find_regions(stub, "f.py")) is None  # nothing solved
    same = solution_fingerprint(regions("x = 1", "y = 2"))
    assert same == solution_fingerprint(regions("# mine", "x = 1", "", "  y = 2"))
    assert same != solution_fingerprint(regions("x = 1", "y = 3"))
