"""``python -m helpers.assignment grade SUBMISSIONS --out DIR``: every submission checked in
its own processes, never imported here.

Per submission, in a temporary folder: unpack it (:mod:`~helpers.assignment.submissions`),
note its ``report.pdf`` and its own report tables' scores, flag public checks it changed
(by hash), put the instructor's ``checks/`` and ``checks_hidden/`` in (over the student's
copies), run them with pytest (``--junitxml``, parsed for each check's result and message),
then the notebooks at smoke size (:mod:`~helpers.assignment.notebook_runner`), each stage
under :class:`~helpers.assignment.sandbox.Limits`. A submission that cannot be unpacked, that
hangs or that crashes gets a failed, flagged row; the others are graded as usual.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from helpers.assignment.grades_table import write_grades
from helpers.assignment.markers import file_regions, solution_fingerprint
from helpers.assignment.sandbox import Limits, run_limited
from helpers.assignment.student import HIDDEN_CHECKS, PUBLIC_CHECKS, all_regions, student_files
from helpers.assignment.submissions import list_submissions, student_id, unpack
from helpers.errors import LesionkitError
from helpers.report.notebooks import NOTEBOOKS
from helpers.system.writable import output_folder

DEFAULT_LIMITS = Limits()
RUNNER = Path(__file__).resolve().with_name("notebook_runner.py")
NOTEBOOK_OUTPUT = "reports/_grading"
#: The submission's own tables read for its scores (the report's official scores).
SCORE_TABLE = "tables/04_official_scores.csv"
#: Files larger than this are not read back from a submission (XML, JSON, tables).
MAX_READ = 4 * 2**20


@dataclass
class Row:
    """One student's line of grades.csv."""

    student: str
    checks: dict[str, str] = field(default_factory=dict)  # check -> "pass" or "FAIL: why"
    notebooks: dict[str, str] = field(default_factory=dict)  # notebook -> "ran" or why not
    report_pdf: bool = False
    scores: str = ""
    flags: list[str] = field(default_factory=list)
    fingerprint: str | None = None


def check_names(kit: Path) -> list[str]:
    """Every check of the kit, ``folder/file.py::test``, in file order."""
    names = []
    for folder in (PUBLIC_CHECKS, HIDDEN_CHECKS):
        for path in sorted((kit / folder).glob("test_*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names += [f"{folder}/{path.name}::{node.name}" for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return names


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def modified_checks(kit: Path, root: Path) -> list[str]:
    """The public check files the submission changed or removed."""
    changed = []
    for path in sorted((kit / PUBLIC_CHECKS).glob("*.py")):
        theirs = root / PUBLIC_CHECKS / path.name
        if not theirs.is_file() or _sha256(theirs) != _sha256(path):
            changed.append(f"{PUBLIC_CHECKS}/{path.name}")
    return changed


def install_checks(kit: Path, root: Path) -> None:
    """Replace the submission's check folders (and root conftest.py) by the instructor's."""
    for folder in (PUBLIC_CHECKS, HIDDEN_CHECKS):
        shutil.rmtree(root / folder, ignore_errors=True)
        shutil.copytree(kit / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(kit / "conftest.py", root / "conftest.py")


def report_scores(root: Path) -> tuple[bool, str]:
    """Whether the submission has a ``report.pdf``, and the scores its report tables show."""
    reports = root / "reports"
    pdf = reports.is_dir() and any(p.is_file() for p in reports.glob("*/report.pdf"))
    shown = []
    for table in sorted(reports.glob(f"*/{SCORE_TABLE}")) if reports.is_dir() else []:
        if table.stat().st_size > MAX_READ or table.parts[-3] == Path(NOTEBOOK_OUTPUT).name:
            continue
        try:
            rows = list(csv.DictReader(table.read_text(encoding="utf-8").splitlines()))
        except (UnicodeDecodeError, csv.Error):
            continue
        for row in rows:
            model = row.get("") or row.get("model") or "?"
            values = [f"{key} {row[key]}" for key in ("jaccard", "dice") if row.get(key)]
            shown.append(f"{table.parts[-3]} {model}: {', '.join(values)}")
    return pdf, "; ".join(shown)


def parse_junit(path: Path, expected: list[str]) -> dict[str, str]:
    """Each expected check's result from pytest's JUnit XML: ``pass`` or ``FAIL: message``
    (the first line of the assertion; a parametrised check passes when all its cases do); a
    check absent from the XML did not run."""
    results = {name: "FAIL: did not run" for name in expected}
    if not path.is_file() or path.stat().st_size > MAX_READ:
        return results
    try:
        tree = ElementTree.parse(path)
    except ElementTree.ParseError:
        return results
    seen: set[str] = set()
    for case in tree.iter("testcase"):
        folder_file = (case.get("classname") or "").replace(".", "/") + ".py"
        name = f"{folder_file}::{(case.get('name') or '').split('[')[0]}"  # all its parameters
        if name not in results:
            continue
        problem = next((child for child in case if child.tag in ("failure", "error")), None)
        skipped = next((child for child in case if child.tag == "skipped"), None)
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip()
            result = "FAIL: " + _first_line(message)
        else:
            result = "FAIL: skipped" if skipped is not None else "pass"
        if name not in seen or results[name] == "pass":  # a check fails if one case fails
            results[name] = result
        seen.add(name)
    return results


def _first_line(message: str) -> str:
    """The informative first line of a pytest message, cut to 300 characters."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[0] if lines else "failed"
    return text[:300]


def child_environment(root: Path) -> dict[str, str]:
    """The grader's environment for a submission's processes: its own folder on the path,
    headless notebooks, no bytecode written."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(root), LESIONKIT_HEADLESS="1", PYTHONDONTWRITEBYTECODE="1",
               MPLBACKEND="Agg")
    return env


def run_checks(kit: Path, root: Path, work: Path, limits: Limits, row: Row) -> None:
    """Run the instructor's checks on the submission in a limited child process."""
    expected = check_names(kit)
    ini = work / "pytest.ini"
    ini.write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    xml = work / "checks.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-c", str(ini), "--rootdir", str(root),
               "--confcutdir", str(root / PUBLIC_CHECKS), f"--junitxml={xml}",
               PUBLIC_CHECKS, HIDDEN_CHECKS]
    outcome = run_limited(command, root, child_environment(root), limits, work / "checks.log")
    row.checks = parse_junit(xml, expected)
    if outcome.timed_out:
        row.flags.append(f"checks timed out after {limits.seconds:g} s")
        row.checks = {name: ("FAIL: time-out" if result == "FAIL: did not run" else result)
                      for name, result in row.checks.items()}


def run_notebooks(root: Path, work: Path, limits: Limits, row: Row) -> None:
    """Run the submission's notebooks at smoke size in a limited child process."""
    status_path = work / "notebooks.json"
    command = [sys.executable, "-P", str(RUNNER), str(status_path), NOTEBOOK_OUTPUT]
    outcome = run_limited(command, root, child_environment(root), limits,
                          work / "notebooks.log")
    try:
        status = json.loads(status_path.read_text()) if status_path.stat().st_size < MAX_READ \
            else {}
    except (OSError, ValueError):
        status = {}
    for name in NOTEBOOKS:
        entry = status.get(name) if isinstance(status, dict) else None
        if not isinstance(entry, dict):
            row.notebooks[name] = "did not run"
        elif entry.get("ran") is True:
            row.notebooks[name] = "ran"
        elif entry.get("error") == "running" and outcome.timed_out:
            row.notebooks[name] = "time-out"
        elif entry.get("cell") is not None:
            row.notebooks[name] = _first_line(f"failed in cell {entry['cell']}: "
                                              f"{entry.get('error')}")
        else:
            row.notebooks[name] = _first_line(str(entry.get("error") or "did not run"))
    if outcome.timed_out:
        row.flags.append(f"notebooks timed out after {limits.seconds:g} s")


def grade_one(kit: Path, submission: Path, limits: Limits, notebooks: bool = True) -> Row:
    """Grade one submission; whatever it does, return its row."""
    row = Row(student_id(submission))
    with tempfile.TemporaryDirectory(prefix="lesionkit-grade-",
                                     ignore_cleanup_errors=True) as temporary:
        work = Path(temporary)
        try:
            root = unpack(submission, work / "submission")
            row.report_pdf, row.scores = report_scores(root)
            # the exercises a student version holds (not, say, a committed report's copy)
            exercise_files = sorted({r.file for r in all_regions(kit, student_files(kit))})
            regions = []
            for name in exercise_files:
                if (root / name).is_file():
                    regions += file_regions(root / name, name)
                else:
                    row.flags.append(f"{name} is missing")
            row.fingerprint = solution_fingerprint(regions)
            row.flags += [f"check modified: {name}" for name in modified_checks(kit, root)]
            install_checks(kit, root)
        except (LesionkitError, OSError, ValueError) as error:
            row.flags.append(f"not graded: {error}")
            row.checks = {name: "FAIL: not graded" for name in check_names(kit)}
            return row
        run_checks(kit, root, work, limits, row)
        if notebooks:
            run_notebooks(root, work, limits, row)
    return row


def flag_identical(rows: list[Row]) -> None:
    """Flag every pair of submissions whose solution code is the same."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.fingerprint:
            groups.setdefault(row.fingerprint, []).append(row.student)
    for row in rows:
        others = [s for s in groups.get(row.fingerprint or "", []) if s != row.student]
        if others:
            row.flags.append(f"identical solution code: {', '.join(others)}")


def grade_all(kit: Path, submissions: Path, out: Path, limits: Limits = DEFAULT_LIMITS,
              notebooks: bool = True) -> list[Row]:
    """Grade every submission in ``submissions``; write ``grades.csv`` and ``grades.html``
    into ``out``; return the rows."""
    output_folder(out, inputs=[submissions], what="grades folder")
    found = list_submissions(submissions)
    if os.geteuid() == 0:
        print("Warning: grading as root, whose number of processes the system does not limit "
              "(a fork bomb is stopped only by the time limit); grade as another user or in a "
              "container (docs/assignment.md)", file=sys.stderr)
    rows = []
    for number, submission in enumerate(found, 1):
        print(f"[{number}/{len(found)}] {student_id(submission)}", flush=True)
        rows.append(grade_one(kit, submission, limits, notebooks))
    flag_identical(rows)
    write_grades(out, rows, check_names(kit), notebooks)
    return rows
