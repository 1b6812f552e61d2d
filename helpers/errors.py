"""Every error the kit raises on purpose, under one root: :class:`LesionkitError`.

A ``LesionkitError`` means "the input cannot be used, and the message says which file or
setting and what to do": each command prints it as one line and exits with status 1. Any
other exception is a bug and keeps its traceback.

The decode cache's ``DamagedCache`` (it carries the damaged row) is defined in
:mod:`helpers.system.cache`, also under ``LesionkitError``.

Each class also derives from the built-in exception it is closest to (a damaged cache is an
``OSError``, a bad setting a ``ValueError``), so code that catches those still catches it.
"""

from __future__ import annotations

import reprlib
from typing import Any


class _Short(reprlib.Repr):
    """reprlib's short repr; a whole number too long to print is given by its size (Python
    refuses to print one of over 4300 digits)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<a whole number of {x.bit_length():,} bits>"
        return super().repr_int(x, level)


_SHORT = _Short()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)`` cut short, for quoting in a message: a refusal never quotes more than a
    line of what it got, however large or deeply nested that is."""
    return _SHORT.repr(value)


class LesionkitError(Exception):
    """The root of the kit's own errors: a problem with the input, named in the message."""


class ConfigError(LesionkitError, ValueError):
    """A preset or override that cannot be used; the message names the file and the key."""


class InvalidSetting(LesionkitError, ValueError):
    """A training setting with a value that cannot work; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


class UsageError(LesionkitError, ValueError):
    """A value given to a command or function (a threshold, a device, a factor) that
    cannot work; the message says which and what is allowed."""


class DatasetError(LesionkitError, ValueError):
    """Images or masks that cannot be used; the message names the file and the problem."""


class RunFolderError(LesionkitError, RuntimeError):
    """A run folder that cannot be used as it is; the message names the file and what to do."""


class NonFiniteLossError(LesionkitError, FloatingPointError):
    """Training produced a NaN or infinite loss; the checkpoints keep the last good epoch."""


class PartnerStopped(LesionkitError, RuntimeError):
    """Under torchrun: another process stopped with an error, so this one stops too."""


class WeightsUnavailableError(LesionkitError, RuntimeError):
    """The ImageNet weights are neither cached nor obtainable; the kit never trains from
    random weights instead."""


class DownloadError(LesionkitError, RuntimeError):
    """A download or its unpacking failed; what was already on disk is kept."""


class Offline(DownloadError):
    """The server could not be reached at all."""


class DiskFullError(LesionkitError, OSError):
    """The disk (or the user's quota) filled up while writing; the message names the file and
    the space left. The file being written is left as it was."""


class ExportError(LesionkitError, RuntimeError):
    """An ONNX export that could not be made, or that disagrees with PyTorch."""


class OutputFolderError(LesionkitError, ValueError):
    """An output folder that cannot be written, or that would overwrite the inputs."""


class KitFileError(LesionkitError, ValueError):
    """A file of the kit itself (pyproject.toml, README.md, a notebook) that is not in the
    shape a command rewrites; the message names the file and what it must hold."""


class NotebookFailed(LesionkitError, RuntimeError):
    """A notebook of the report stopped; the message names the notebook and the cell."""


#: How the message of an exercise stub starts (the student version's ``raise
#: NotImplementedError("Exercise N (title): hint")``, helpers/assignment/markers.py).
STUB_PREFIX = "Exercise "


class ExerciseUnsolved(NotebookFailed):
    """A notebook of the student version stopped at an exercise stub: the message names the
    notebook and the exercise's hint."""


class MarkerError(LesionkitError, ValueError):
    """A solution or answer marker that cannot be used (an unclosed or nested region, a
    missing hint); the message names the file and the line."""


class SubmissionError(LesionkitError, ValueError):
    """A submission that cannot be graded as it is (an unsafe zip, a symbolic link); it costs
    that submission's row only."""
