"""``python -m helpers.assignment student``: the student version fails its checks with one
hint per exercise until the instructor's solutions are put back, and is made the same way
every time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from student_kits import exercise_files, run_checks, solve

from helpers.assignment.__main__ import main
from helpers.assignment.student import write_student_version
from helpers.paths import REPO_ROOT


def test_the_student_version_leaves_out_instructor_material(student_version: Path) -> None:
    present = {p.relative_to(student_version).parts[0] for p in student_version.iterdir()}
    assert {"helpers", "notebooks", "checks", "scripts", "presets", "ASSIGNMENT.md",
            "requirements.txt", "README.md"} <= present
    assert not present & {"reports", "checks_hidden", "tests", "benchmarks", ".ci"}
    assert (student_version / "presets" / "demo.yaml").is_file()
    assert "pytest checks" in (student_version / "scripts" / "test.sh").read_text()
    assert "ASSIGNMENT.md" in (student_version / "README.md").read_text()


def test_every_solution_is_replaced_and_outputs_are_stripped(student_version: Path) -> None:
    assert exercise_files(student_version) == ["helpers/metrics.py", "helpers/model.py",
                                               "helpers/plots.py", "helpers/train.py"]
    model = (student_version / "helpers" / "model.py").read_text()
    assert "DECODER_BLOCKS)\n" not in model.split("class UNetDecoder")[1].split("def forward")[0]
    notebook = nbformat.read(student_version / "notebooks" / "04_comparison.ipynb", 4)
    answer = next(c for c in notebook.cells if "BEGIN ANSWER" in c.source)
    assert "Fine-tuning the encoder is worth it" not in answer.source
    assert "Write your answer here" in answer.source
    for path in (student_version / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            assert cell.cell_type != "code" or (not cell.outputs and cell.execution_count is None)
    table = (student_version / "ASSIGNMENT.md").read_text()
    assert sorted(set(re.findall(r"^\| (\d) \|", table, re.MULTILINE))) == list("12345")
    assert "report.pdf" in table and "Colab" in table


def test_the_student_version_is_lint_clean(student_version: Path) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed beside this Python")
    result = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=student_version,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_twice_gives_the_same_bytes(student_version: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_student_version(REPO_ROOT, again)

    def contents(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()
                and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts}

    assert contents(again) == contents(student_version)


def test_checks_fail_with_one_hint_per_exercise_then_pass_when_solved(
        student_version: Path, tmp_path: Path) -> None:
    unsolved = run_checks(student_version)
    assert unsolved.returncode == 1
    summary = unsolved.stdout.split("unsolved exercises (ASSIGNMENT.md)")[1]
    hints = re.findall(r"^Exercise (\d) \(", summary, re.MULTILINE)
    assert sorted(set(hints)) == ["1", "2", "3", "4"]
    assert "passed" not in unsolved.stdout.splitlines()[-1]

    solved = solve(student_version, tmp_path / "solved", exercise_files(student_version))
    result = run_checks(solved)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "unsolved exercises" not in result.stdout


@pytest.mark.parametrize("where", ["inside", "not_empty"])
def test_refuses_an_out_folder_inside_the_kit_or_not_empty(where: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = REPO_ROOT / "reports" / "_student" if where == "inside" else tmp_path
    (tmp_path / "something").write_text("x")
    assert main(["student", "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(f"ERROR: --out {out}")
    assert "inside the kit" in error if where == "inside" else "not an empty folder" in error
    assert not (REPO_ROOT / "reports" / "_student").exists()


def test_a_bad_marker_stops_it_naming_file_and_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    kit = tmp_path / "kit"
    (kit / "helpers").mkdir(parents=True)
    (kit / "helpers" / "broken.py").write_text("x = 1\n# BEGIN " + "SOLUTION exercise 1: a\n"
                                               "# HINT: h\ny = 2\n")
    with pytest.raises(Exception, match=r"^helpers/broken.py:2: BEGIN marker without an END"):
        write_student_version(kit, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    shutil.rmtree(kit)
