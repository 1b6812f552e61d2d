"""``grades.csv`` and ``grades.html``: one row per student, written atomically.

Columns: the student, how many checks passed, each check (``pass`` or ``FAIL: message``),
each notebook (``ran``, ``failed in cell N: error``, ``time-out``, ``did not run``), whether
``report.pdf`` is there, the scores of the submission's own report tables, and the flags.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Protocol

from helpers.report.notebooks import NOTEBOOKS
from helpers.system.atomic import write_text


class GradedRow(Protocol):
    student: str
    checks: dict[str, str]
    notebooks: dict[str, str]
    report_pdf: bool
    scores: str
    flags: list[str]


def columns(checks: list[str], notebooks: bool) -> list[str]:
    """The header of grades.csv."""
    return ["student", "checks passed", *checks,
            *(f"notebook {name}" for name in NOTEBOOKS if notebooks),
            "report.pdf", "report scores", "flags"]


def as_record(row: GradedRow, checks: list[str], notebooks: bool) -> list[str]:
    """One row of grades.csv, in the order of :func:`columns`."""
    results = [row.checks.get(name, "FAIL: did not run") for name in checks]
    passed = sum(result == "pass" for result in results)
    record = [row.student, f"{passed}/{len(checks)}", *results]
    if notebooks:
        record += [row.notebooks.get(name, "did not run") for name in NOTEBOOKS]
    return [*record, "yes" if row.report_pdf else "no", row.scores, "; ".join(row.flags)]


def csv_text(rows: list[GradedRow], checks: list[str], notebooks: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(checks, notebooks))
    writer.writerows(as_record(row, checks, notebooks) for row in rows)
    return buffer.getvalue()


def html_text(rows: list[GradedRow], checks: list[str], notebooks: bool) -> str:
    """A self-contained page with the same table, passes green and failures red."""
    def cell(value: str) -> str:
        style = ' class="pass"' if value in ("pass", "ran", "yes") else (
            ' class="fail"' if value.startswith(("FAIL", "failed", "time-out")) else "")
        return f"<td{style}>{html.escape(value)}</td>"

    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns(checks, notebooks))
    body = "\n".join("<tr>" + "".join(cell(v) for v in as_record(row, checks, notebooks))
                     + "</tr>" for row in rows)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Grades</title>\n"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}"
            ".pass{background:#e6f4ea}.fail{background:#fce8e6}</style></head><body>\n"
            f"<h1>Grades</h1>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n</body></html>\n")


def write_grades(out: Path, rows: list[GradedRow], checks: list[str], notebooks: bool) -> None:
    """Write ``grades.csv`` and ``grades.html`` into ``out``, each in one step."""
    write_text(out / "grades.csv", csv_text(rows, checks, notebooks))
    write_text(out / "grades.html", html_text(rows, checks, notebooks))
