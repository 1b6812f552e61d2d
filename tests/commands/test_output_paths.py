"""Every command checks where it will write before it does any work: an output path that is
a file (or a folder, for a file), lies in an input folder, or cannot be written ends with one
line naming it, and exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.commands import ablation, download, evaluate, export, predict, robustness, train
from helpers.commands import zoomout as zoomout_command
from helpers.isic2016 import isic2016_split
from helpers.report import make as report


def _work_not_done(*_: object, **__: object) -> None:
    raise AssertionError("the work started before the output path was checked")


def commands(data: Path, taken: Path) -> list[tuple[object, str, list[str]]]:
    """(module, the function standing for its work, arguments with ``taken`` as output). For
    the commands whose library function checks the folder, its first step after the check
    stands for the work."""
    test = isic2016_split(data, "test")
    images, masks = str(test.images_dir), str(test.masks_dir)
    return [
        (predict, "helpers.predict.load_scored_run", ["--run", "run", "--images", images,
                                                      "--out", str(taken)]),
        (evaluate, "evaluate_folder", ["--run", "run", "--images", images, "--masks", masks,
                                       "--out", str(taken)]),
        (zoomout_command, "helpers.zoomout.find_images", ["--images", images, "--masks", masks,
                                                  "--out", str(taken), "--factor", "0.5"]),
        (robustness, "zoom_out_robustness", ["--run", f"a={data}", "--data-root", str(data),
                                             "--out", str(taken)]),
        (train, "load_splits", ["--preset", "smoke", "--model", "frozen", "--output-dir",
                                str(taken)]),
        (ablation, "load_splits", ["--preset", "best", "--data-root", str(data),
                                   "--output-dir", str(taken)]),
        (download, "fetch", ["--to", str(taken), "--base-url", "http://127.0.0.1:9/"]),
        (report, "execute", ["--preset", "smoke", "--output-dir", str(taken)]),
    ]


@pytest.mark.parametrize("index", range(8))
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(
        index: int, synthetic_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    module, work, argv = commands(synthetic_root, taken)[index]
    if "." in work:
        monkeypatch.setattr(work, _work_not_done)
    else:
        monkeypatch.setattr(module, work, _work_not_done)
    assert module.main(argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("ERROR: ")
    assert str(taken) in error and ("is a file, not a folder" in error
                                    or f"{taken} is a file" in error)
    assert taken.read_text() == "mine"


def test_masks_written_into_the_images_folder_are_refused(synthetic_root: Path,
                                                          monkeypatch, capsys) -> None:
    monkeypatch.setattr("helpers.predict.load_scored_run", _work_not_done)
    images = isic2016_split(synthetic_root, "test").images_dir
    assert predict.main(["--run", "run", "--images", str(images), "--out", str(images)]) == 1
    assert "is the input folder" in capsys.readouterr().err
    assert not list(images.glob("*_mask.png"))


def test_an_onnx_file_that_is_a_folder_is_refused_before_the_model_is_loaded(
        tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(export, "load_scored_run", _work_not_done)
    assert export.main(["--run", "run", "--out", str(tmp_path)]) == 1
    assert "is a folder; give a file name, such as" in capsys.readouterr().err


def test_zoomed_copies_cannot_land_on_the_originals(synthetic_root: Path, tmp_path: Path,
                                                    monkeypatch, capsys) -> None:
    # zoomout writes OUT/images and OUT/masks: with the inputs named so, OUT is their parent
    data = tmp_path / "data"
    for kind in ("images", "masks"):
        (data / kind).mkdir(parents=True)
    monkeypatch.setattr("helpers.zoomout.find_images", _work_not_done)
    assert zoomout_command.main(["--images", str(data / "images"), "--masks",
                                 str(data / "masks"), "--out", str(data), "--factor",
                                 "0.5"]) == 1
    assert "is the input folder" in capsys.readouterr().err
