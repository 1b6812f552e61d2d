"""The checks' summary: after the run, each unsolved exercise's hint, once."""

from __future__ import annotations

import pytest

#: How an exercise stub's error reads in a failed check's report.
STUB_ERROR = "NotImplementedError: Exercise "


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    hints: dict[str, None] = {}
    for report in terminalreporter.stats.get("failed", []):
        crash = getattr(report.longrepr, "reprcrash", None)
        message = getattr(crash, "message", "")
        if message.startswith(STUB_ERROR):
            hints[message.removeprefix("NotImplementedError: ").splitlines()[0]] = None
    if hints:
        terminalreporter.section("unsolved exercises (ASSIGNMENT.md)")
        for hint in sorted(hints):
            terminalreporter.write_line(hint)
