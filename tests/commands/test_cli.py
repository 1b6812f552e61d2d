"""The commands: one entry point that lists them, the kit's errors as one line, bugs as
tracebacks."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import errors
from helpers.__main__ import COMMANDS, main
from helpers.commands.cli import run_command

REPO = Path(__file__).resolve().parents[2]


def test_every_command_module_has_a_main() -> None:
    for name, module in COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_without_a_command_the_commands_are_listed(capsys) -> None:
    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in COMMANDS)


def test_an_unknown_command_is_refused_with_the_list(capsys) -> None:
    assert main(["trian"]) == 2
    said = capsys.readouterr().err
    assert "unknown command 'trian'" in said and "  train " in said


def test_help_of_a_command_names_it() -> None:
    result = subprocess.run([sys.executable, "-m", "helpers", "predict", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: python -m helpers predict")


def test_a_kit_error_is_one_line_and_status_1(capsys) -> None:
    def work(args: argparse.Namespace) -> int:
        raise errors.RunFolderError(f"{args.run}/last.pt cannot be read. Delete the folder.")

    parser = argparse.ArgumentParser()
    parser.add_argument("--run")
    assert run_command(parser, work, ["--run", "runs/x"]) == 1
    assert capsys.readouterr().err == "ERROR: runs/x/last.pt cannot be read. Delete the folder.\n"


def test_a_bug_keeps_its_traceback() -> None:
    def work(args: argparse.Namespace) -> int:
        raise ValueError("a bug, not a user's mistake")

    with pytest.raises(ValueError, match="a bug"):
        run_command(argparse.ArgumentParser(), work, [])


def test_a_real_command_reports_a_missing_run_as_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpers", "evaluate", "--run", str(tmp_path / "none"),
         "--images", str(tmp_path), "--masks", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: ") and "Traceback" not in result.stderr


def test_every_error_class_stands_under_the_root() -> None:
    classes = [obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert len(classes) > 10
    assert all(issubclass(cls, errors.LesionkitError) for cls in classes)


def test_commands_catch_only_the_kit_errors() -> None:
    """No command catches a built-in exception to print it as a user's error: that would
    turn a bug into a one-line message without its traceback."""
    offenders = []
    for path in (REPO / "helpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.body and any(
                    isinstance(call, ast.Call) and getattr(call.func, "id", "") == "print"
                    and any(isinstance(a, ast.JoinedStr) and "ERROR" in ast.unparse(a)
                            for a in call.args)
                    for call in ast.walk(node)):
                caught = ast.unparse(node.type) if node.type else "everything"
                if caught != "LesionkitError":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} catches {caught}")
    assert not offenders, "\n".join(offenders)
