"""A submission is unpacked under bounds: a zip bomb or a linked file is refused with a
one-line reason naming the submission, before anything of it is written."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from helpers.assignment.submissions import MAX_BYTES, kit_root, unpack
from helpers.errors import SubmissionError


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    bomb = tmp_path / "mallory.zip"
    zeros = bytes(2**20)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("kit/helpers/__init__.py", "")
        with archive.open("kit/zeros.bin", "w", force_zip64=True) as member:
            for _ in range(MAX_BYTES // len(zeros) + 64):  # beyond the bound, a few MiB zipped
                member.write(zeros)
    assert bomb.stat().st_size < 8 * 2**20
    target = tmp_path / "unpacked"
    with pytest.raises(SubmissionError, match=r"^mallory\.zip .*(MiB|times)"):
        unpack(bomb, target)
    assert list(target.rglob("*")) == []


def test_a_folder_with_a_link_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "trent"
    (folder / "helpers").mkdir(parents=True)
    os.symlink("/etc/passwd", folder / "helpers" / "secrets.txt")
    with pytest.raises(SubmissionError, match=r"trent: helpers/secrets\.txt is a symbolic link"):
        unpack(folder, tmp_path / "unpacked")


def test_the_kit_is_found_at_the_top_or_in_its_one_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "helpers").mkdir(parents=True)
    assert kit_root(tmp_path / "a", Path("a")) == tmp_path / "a"
    (tmp_path / "b" / "kit" / "helpers").mkdir(parents=True)
    assert kit_root(tmp_path / "b", Path("b.zip")) == tmp_path / "b" / "kit"
    (tmp_path / "c" / "notes").mkdir(parents=True)
    with pytest.raises(SubmissionError, match=r"c\.zip holds no copy of the kit"):
        kit_root(tmp_path / "c", Path("c.zip"))
