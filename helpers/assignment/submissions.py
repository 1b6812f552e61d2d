"""One submission (a folder or a ``.zip``, named by the student's id) unpacked for grading.

A zip goes through the kit's bounded extraction (``helpers.commands.download``: member count,
unpacked size against the zip's and the disk's, CRC, no absolute, ``..`` or linked members)
plus ``MAX_BYTES`` in all; a folder is copied without following links, under the same
bounds. Anything refused raises :class:`SubmissionError`, which costs that submission's row.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from helpers.commands.download import check_zip, safe_extract
from helpers.errors import DownloadError, SubmissionError

#: Bounds on one submission: a student version is a few MiB, with its report some tens.
MAX_BYTES = 512 * 2**20
MAX_FILES = 20_000
#: Not copied from a folder submission: environments, data and caches the grader never reads.
SKIPPED = {".git", ".venv", "data", "__pycache__", ".pytest_cache", ".ruff_cache",
           ".ipynb_checkpoints"}
#: What marks the kit's root inside a submission.
KIT_MARK = "helpers"


def list_submissions(folder: Path) -> list[Path]:
    """The submissions in ``folder``: its folders and ``.zip`` files, by name."""
    if not folder.is_dir():
        raise SubmissionError(f"{folder} is not a folder of submissions")
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                  and (p.suffix == ".zip" and p.is_file() or p.is_dir()))


def student_id(submission: Path) -> str:
    """The student's id: the submission's name without ``.zip``."""
    return submission.name.removesuffix(".zip")


def unpack(submission: Path, target: Path) -> Path:
    """Unpack or copy ``submission`` into ``target`` (created); return the kit's root in it
    (``target`` or its one top folder)."""
    target.mkdir(parents=True)
    if submission.suffix == ".zip":
        _extract_zip(submission, target)
    else:
        _copy_folder(submission, target)
    return kit_root(target, submission)


def _extract_zip(path: Path, target: Path) -> None:
    try:
        check_zip(path, target)  # members, unpacked size against the zip's and the disk's
        with zipfile.ZipFile(path) as archive:
            total = sum(member.file_size for member in archive.infolist())
        if total > MAX_BYTES:
            raise SubmissionError(f"{path.name} would unpack to {total / 2**20:,.0f} MiB, more "
                                  f"than the {MAX_BYTES / 2**20:,.0f} MiB a submission may hold")
        safe_extract(path, target)  # no absolute, `..` or linked members
    except DownloadError as error:
        raise SubmissionError(str(error).replace(str(path), path.name)) from error
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{path.name} cannot be unpacked: {error}") from error


def _copy_folder(source: Path, target: Path) -> None:
    count = total = 0
    for folder, subfolders, names in os.walk(source):
        here = Path(folder)
        subfolders[:] = sorted(s for s in subfolders if s not in SKIPPED)
        for name in [*subfolders, *names]:
            if (here / name).is_symlink():
                raise SubmissionError(f"{source.name}: {(here / name).relative_to(source)} is "
                                      "a symbolic link; submissions hold files only")
        for name in sorted(names):
            path = here / name
            count, total = count + 1, total + path.stat().st_size
            if count > MAX_FILES or total > MAX_BYTES:
                raise SubmissionError(f"{source.name} holds more than {MAX_FILES:,} files or "
                                      f"{MAX_BYTES / 2**20:,.0f} MiB")
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def kit_root(target: Path, submission: Path) -> Path:
    """``target`` when it holds ``helpers/``, else its one folder that does."""
    if (target / KIT_MARK).is_dir():
        return target
    inside = [p for p in target.iterdir() if p.is_dir() and (p / KIT_MARK).is_dir()]
    if len(inside) == 1:
        return inside[0]
    raise SubmissionError(f"{submission.name} holds no copy of the kit (no {KIT_MARK}/ folder "
                          "at its top or in its one top folder)")
