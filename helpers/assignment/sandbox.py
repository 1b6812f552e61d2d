"""Running a submission's code in a child process under limits (POSIX).

The child starts in its own session (process group) and, before it runs anything, lowers its
own limits with ``resource.setrlimit``: CPU seconds, address space, the largest file it may
write, and the number of processes (counted per user by the system, so the limit is the
user's current count plus ``Limits.processes``: a fork bomb stops there). On the wall-clock
time limit the whole group is killed, and every process descended from the child that left
the group (a Jupyter kernel starts its own session) as well.

These limits keep one broken or hostile submission from costing the others their rows; they
are not a security boundary. docs/assignment.md says how to grade in a container.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """What one stage (the checks, or the notebooks) of one submission may use."""

    seconds: float = 600.0  # wall clock
    cpu_seconds: int = 1800  # CPU time of each process
    memory_gib: float = 8.0  # address space of each process
    file_mib: int = 512  # the largest file a process may write
    processes: int = 256  # processes and threads beyond the user's current count

    def with_changes(self, **changes: float) -> Limits:
        """A copy with ``changes``; the CPU limit follows a changed wall clock (3 cores' worth,
        at least a minute)."""
        changed = replace(self, **changes)
        if "seconds" in changes:
            changed = replace(changed, cpu_seconds=max(60, int(3 * changed.seconds)))
        return changed


@dataclass(frozen=True)
class Outcome:
    """How a limited command ended."""

    returncode: int | None  # None when it was killed on the time limit
    timed_out: bool
    seconds: float


def user_tasks() -> int:
    """How many processes and threads this user has now (the count RLIMIT_NPROC limits)."""
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue  # it ended while we counted
    return count


def limiter(limits: Limits) -> Callable[[], None]:
    """The ``preexec_fn`` that sets ``limits`` in the child before it runs anything."""
    address_space = int(limits.memory_gib * 2**30)
    processes = user_tasks() + limits.processes

    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mib * 2**20,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return set_limits


def descendants(pid: int) -> list[int]:
    """Every living process descended from ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL ``process``'s group and every descendant that left it."""
    stray = descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    for pid in stray:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # gone already


def run_limited(command: list[str], cwd: Path, env: dict[str, str], limits: Limits,
                log: Path) -> Outcome:
    """Run ``command`` in ``cwd`` under ``limits``, its output to ``log``; never raises for
    what the command does (a crash, a time-out, a limit hit)."""
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=limiter(limits))
        try:
            returncode: int | None = process.wait(timeout=limits.seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            returncode, timed_out = None, True
        kill_tree(process)  # also what it left running after it ended
        process.wait()
    return Outcome(returncode, timed_out, time.monotonic() - started)
