"""The limits on a submission's processes: the time limit kills what it left running, a
file too large and too many processes fail inside the child only."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from helpers.assignment.sandbox import Limits, run_limited

LIMITS = Limits(seconds=30, cpu_seconds=60, memory_gib=4, file_mib=1, processes=8)


def run(code: str, tmp_path: Path, limits: Limits = LIMITS):
    return run_limited([sys.executable, "-c", code], tmp_path, dict(os.environ), limits,
                       tmp_path / "log.txt")


def test_the_time_limit_kills_the_child_and_what_left_its_group(tmp_path: Path) -> None:
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            "open('child.pid', 'w').write(str(child.pid))\n"
            "time.sleep(600)\n")
    outcome = run(code, tmp_path, Limits(seconds=3, processes=8))
    assert outcome.timed_out and outcome.returncode is None and outcome.seconds < 30
    pid = int((tmp_path / "child.pid").read_text())
    time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_a_file_over_the_size_limit_stops_the_child(tmp_path: Path) -> None:
    outcome = run("open('big', 'wb').write(b'x' * (4 * 2**20))", tmp_path)
    assert outcome.returncode != 0 and not outcome.timed_out
    assert (tmp_path / "big").stat().st_size <= 2**20


@pytest.mark.skipif(os.geteuid() == 0, reason="the system does not limit root's processes")
def test_a_fork_loop_hits_the_process_limit(tmp_path: Path) -> None:
    code = ("import subprocess\nstarted = []\n"
            "try:\n    for _ in range(64):\n"
            "        started.append(subprocess.Popen(['sleep', '30']))\n"
            "except OSError:\n    print('refused after', len(started))\n"
            "for p in started:\n    p.kill()\n")
    outcome = run(code, tmp_path)
    assert outcome.returncode == 0
    assert "refused after" in (tmp_path / "log.txt").read_text()
