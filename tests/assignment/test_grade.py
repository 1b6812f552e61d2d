"""``python -m helpers.assignment grade``: five made-up submissions (solved, its copy as a
zip, half-solved with a check edited, one that hangs, one hostile zip) graded into the
expected rows; each costs only its own row."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import pytest
from student_kits import exercise_files, solve

from helpers.assignment.grade import check_names, grade_all
from helpers.assignment.markers import find_regions, replace_regions
from helpers.assignment.sandbox import Limits
from helpers.paths import REPO_ROOT

pytestmark = pytest.mark.notebooks  # minutes, like the notebooks: the fast loop skips it

#: Generous for a solved submission's checks on a busy machine; what the hanging one costs.
LIMITS = Limits().with_changes(seconds=120)


def zip_folder(folder: Path, target: Path, extra: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"kit/{path.relative_to(folder).as_posix()}")
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return target


def hang_in_six_panel_row(kit: Path) -> None:
    """Replace exercise 4's stub by an infinite loop."""
    path = kit / "helpers" / "plots.py"
    text = path.read_text()
    region = next(r for r in find_regions(text, "helpers/plots.py") if r.exercise == 4)
    lines = text.splitlines()
    lines[region.begin + 2:region.end] = [f"{region.indent}while True:",
                                         f"{region.indent}    pass"]
    path.write_text("\n".join(lines) + "\n")
    assert replace_regions(text, [region]) == text  # it was the stub before


@pytest.fixture(scope="module")
def grades(student_version: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("grading")
    submissions = base / "submissions"
    submissions.mkdir()
    solved = solve(student_version, submissions / "alice", exercise_files(student_version))
    zip_folder(solved, submissions / "bob.zip")  # the same code, handed in as a zip
    half = solve(student_version, submissions / "carol",
                 ["helpers/metrics.py", "helpers/plots.py"])  # exercises 3 and 4
    with open(half / "checks" / "test_exercise_1_decoder.py", "a") as check:
        check.write("\n# edited by the student\n")
    hangs = solve(student_version, submissions / "dave", ["helpers/model.py", "helpers/train.py",
                                                          "helpers/metrics.py"])
    hang_in_six_panel_row(hangs)
    zip_folder(student_version, submissions / "eve.zip", {"../escaped.py": "print('out')"})
    rows = grade_all(REPO_ROOT, submissions, base / "grades", LIMITS, notebooks=False)
    with open(base / "grades" / "grades.csv", newline="") as table:
        by_student = {row["student"]: row for row in csv.DictReader(table)}
    return {"rows": rows, "csv": by_student, "base": base}


def checks_of(exercises: set[int]) -> list[str]:
    return [name for name in check_names(REPO_ROOT)
            if any(f"_{n}_" in name.split("::")[0] for n in exercises)]


def test_every_student_has_a_row_and_both_files_are_written(grades: dict) -> None:
    assert list(grades["csv"]) == ["alice", "bob", "carol", "dave", "eve"]
    page = (grades["base"] / "grades" / "grades.html").read_text()
    assert all(f"<td>{student}</td>" in page for student in grades["csv"])
    assert not (grades["base"] / "escaped.py").exists()


def test_a_solved_submission_passes_every_check(grades: dict) -> None:
    total = len(check_names(REPO_ROOT))
    for student in ("alice", "bob"):
        row = grades["csv"][student]
        assert row["checks passed"] == f"{total}/{total}", row
        assert row["report.pdf"] == "no"
    assert grades["csv"]["alice"]["flags"] == "identical solution code: bob"
    assert grades["csv"]["bob"]["flags"] == "identical solution code: alice"


def test_a_half_solved_one_fails_the_rest_with_the_hints(grades: dict) -> None:
    row = grades["csv"]["carol"]
    for name in checks_of({3, 4}):
        assert row[name] == "pass", name
    for name in checks_of({1}):
        assert row[name].startswith("FAIL: NotImplementedError: Exercise 1 (the U-Net"), name
    public_2 = [n for n in checks_of({2}) if n.startswith("checks/")]
    assert all(row[n].startswith("FAIL: NotImplementedError: Exercise 2 (") for n in public_2)
    assert row["flags"] == "check modified: checks/test_exercise_1_decoder.py"


def test_a_hanging_one_is_stopped_at_the_time_limit(grades: dict) -> None:
    row = grades["csv"]["dave"]
    assert row["flags"] == f"checks timed out after {LIMITS.seconds:g} s"
    assert all(row[name] == "FAIL: time-out" for name in check_names(REPO_ROOT))


def test_a_zip_with_a_climbing_member_is_refused_and_costs_its_row(grades: dict) -> None:
    row = grades["csv"]["eve"]
    assert row["flags"].startswith("not graded: eve.zip: member '../escaped.py' is a path "
                                   "outside the target folder")
    assert row["checks passed"] == f"0/{len(check_names(REPO_ROOT))}"
    shutil.rmtree(grades["base"] / "submissions")
