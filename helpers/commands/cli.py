"""What every command shares: parse the arguments, do the work, and print a
:class:`~helpers.errors.LesionkitError` as one line ``ERROR: ...`` with exit status 1.

Only the kit's own errors are caught: they mean "this input cannot be used" and say why. Any
other exception is a bug in the kit, and its traceback is what a bug report needs. Under
torchrun, a process stopped because another one failed (``PartnerStopped``) prints nothing:
the process that failed prints its error, so it is printed once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from helpers.errors import LesionkitError, PartnerStopped


def run_command(parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace], int | None],
                argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and call ``work(args)``; its return value (None: 0) is
    the exit status, and a LesionkitError becomes one line on stderr and status 1."""
    args = parser.parse_args(argv)
    try:
        return work(args) or 0
    except PartnerStopped:
        return 1  # under torchrun: the process whose error it is prints it, once
    except LesionkitError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
