"""``python -m helpers.assignment student|grade``: the instructor's two commands.

    python -m helpers.assignment student --out DIR
    python -m helpers.assignment grade SUBMISSIONS --out grades/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.assignment.grade import DEFAULT_LIMITS, grade_all
from helpers.assignment.student import write_student_version
from helpers.commands.cli import run_command
from helpers.paths import REPO_ROOT


def parser() -> argparse.ArgumentParser:
    """The two sub-commands and their options."""
    main_parser = argparse.ArgumentParser(
        prog="python -m helpers.assignment",
        description="The instructor's side: the student version, and grading submissions "
                    "(docs/assignment.md).")
    commands = main_parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write the student version of this kit")
    student.add_argument("--out", type=Path, required=True,
                         help="a new or empty folder outside the kit")
    grade = commands.add_parser("grade", help="grade a folder of submissions (runs their code)")
    grade.add_argument("submissions", type=Path,
                       help="a folder with one folder or .zip per student (its name: the id)")
    grade.add_argument("--out", type=Path, required=True,
                       help="where grades.csv and grades.html go")
    grade.add_argument("--time-limit", type=float, default=DEFAULT_LIMITS.seconds,
                       help="wall-clock seconds for each stage of one submission "
                            f"(default {DEFAULT_LIMITS.seconds:g})")
    grade.add_argument("--memory-gib", type=float, default=DEFAULT_LIMITS.memory_gib,
                       help="address space per process of a submission, GiB "
                            f"(default {DEFAULT_LIMITS.memory_gib:g})")
    grade.add_argument("--no-notebooks", action="store_true",
                       help="run the checks only, not the notebooks at smoke size")
    return main_parser


def work(args: argparse.Namespace) -> int:
    if args.command == "student":
        regions = write_student_version(REPO_ROOT, args.out)
        exercises = sorted({r.exercise for r in regions})
        print(f"Wrote the student version to {args.out}: {len(exercises)} exercises in "
              f"{len(regions)} regions; see {args.out / 'ASSIGNMENT.md'}")
        return 0
    limits = DEFAULT_LIMITS.with_changes(seconds=args.time_limit, memory_gib=args.memory_gib)
    rows = grade_all(REPO_ROOT, args.submissions, args.out, limits,
                     notebooks=not args.no_notebooks)
    print(f"Graded {len(rows)} submissions: {args.out / 'grades.csv'}, "
          f"{args.out / 'grades.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())
