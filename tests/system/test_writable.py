"""Output paths are checked before any work, leaving nothing behind, and a full disk is named
with the file being written and the space left."""

from __future__ import annotations

import errno
import io
import pathlib
from pathlib import Path

import pytest
import torch

from helpers.errors import DiskFullError, OutputFolderError
from helpers.runs.checkpoints import save_checkpoint
from helpers.system import writable
from helpers.system.atomic import atomic_path, write_text
from helpers.system.writable import output_file, output_folder


def test_a_missing_output_folder_passes_and_is_not_created(tmp_path: Path) -> None:
    assert output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []  # nor is the probe left behind


def test_an_output_folder_that_is_a_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"The output folder .*taken is a file, not a "
                                                r"folder\. Choose a folder\.$"):
        output_folder(tmp_path / "taken")
    with pytest.raises(OutputFolderError, match=r"run folder .*taken/runs/frozen cannot be "
                                                r"created: .*taken is a file"):
        output_folder(tmp_path / "taken" / "runs" / "frozen", what="run folder")
    assert (tmp_path / "taken").read_text() == "mine"


def test_an_output_folder_that_is_an_input_folder_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(OutputFolderError, match=r"is the input folder .*images: what is written "
                                                "there would be read as input the next time"):
        output_folder(tmp_path / "images" / ".." / "images", inputs=[tmp_path / "x", images])
    # the kit reads only the files directly in a folder: a folder inside it is fine
    assert output_folder(images / "masks", inputs=[images]) == images / "masks"


def test_a_folder_that_cannot_be_written_is_named_with_the_reason(tmp_path: Path,
                                                                  monkeypatch) -> None:
    def read_only(**_: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(writable.tempfile, "mkdtemp", read_only)
    with pytest.raises(OutputFolderError, match=r"The output folder .*out cannot be written "
                                                r"\(in .*\): Read-only file system\. Choose a "
                                                "folder you can write to"):
        output_folder(tmp_path / "out")


def test_an_output_file_that_is_a_folder_or_under_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputFolderError, match=r"The ONNX file .* is a folder; give a file "
                                                r"name, such as .*model\.onnx"):
        output_file(tmp_path, what="ONNX file")
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"Cannot write the output file .*taken/m\.onnx: "
                                                "its folder is a file, not a folder"):
        output_file(tmp_path / "taken" / "m.onnx")
    assert output_file(tmp_path / "new" / "m.onnx") == tmp_path / "new" / "m.onnx"
    assert not (tmp_path / "new").exists()


def test_a_full_disk_names_the_file_and_the_space_left_and_keeps_the_old_file(
        tmp_path: Path) -> None:
    target = tmp_path / "history.csv"
    write_text(target, "the old history\n")
    with pytest.raises(DiskFullError, match=r"Cannot write .*history\.csv: the disk is full "
                                            r"\([\d,.]+ MiB free there; No space left on "
                                            r"device\)\. Free some space"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "the old history\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]  # no temporary file left


def test_a_checkpoint_on_a_full_disk_is_named_without_torchs_internal_text(
        tmp_path: Path, monkeypatch) -> None:
    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match=r"Cannot write .*last\.pt: the disk is full") as raised:
        save_checkpoint({"epoch": 1, "model": {"w": torch.ones(3)}}, tmp_path / "last.pt")
    assert "enforce fail" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_the_same_checkpoint_gives_the_same_bytes_whatever_the_file_name(tmp_path: Path) -> None:
    state = {"epoch": 3, "model": {"w": torch.arange(6.0)}}
    save_checkpoint(state, tmp_path / "last.pt")
    save_checkpoint(state, tmp_path / "best.pt")
    assert (tmp_path / "last.pt").read_bytes() == (tmp_path / "best.pt").read_bytes()
    loaded = torch.load(io.BytesIO((tmp_path / "last.pt").read_bytes()), weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
