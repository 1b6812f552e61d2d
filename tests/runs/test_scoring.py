"""A run folder remembers how notebook 04 scored its model (scoring.json): predicting,
evaluating and exporting then score it the same way, unless told otherwise, and only while
the checkpoint holds the very weights that were scored."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from helpers import evaluate, runs
from helpers.commands import evaluate as evaluate_command
from helpers.commands import export, predict
from helpers.commands.export import export_onnx
from helpers.config import TrainConfig
from helpers.decode import load_split
from helpers.errors import RunFolderError
from helpers.evaluate import upsample
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.model import build_model
from helpers.runs import load_scored_run, load_trained
from helpers.train import fit

CONFIG = TrainConfig(epochs=2, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)


@pytest.fixture
def scored_run(synthetic_root: Path, tmp_path: Path) -> Path:
    """A two-epoch run whose best checkpoint was scored at 0.3 with flips."""
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    run = tmp_path / "run"
    fit(build_model(CONFIG), splits.train, splits.val, CONFIG, run, progress=False)
    _, epoch = load_trained(CONFIG, run, "best")
    runs.write_scoring(run, "best", epoch, 0.3, flips=True)
    return run


def test_without_a_record_the_defaults_are_last_checkpoint_threshold_half_no_flips(
        scored_run: Path) -> None:
    (scored_run / runs.SCORING).unlink()
    *_, scoring = load_scored_run(scored_run)
    assert (scoring.checkpoint, scoring.threshold, scoring.flips, scoring.source) == (
        "last", 0.5, False, f"defaults: no {runs.SCORING}")


def test_the_record_gives_checkpoint_threshold_and_flips(scored_run: Path) -> None:
    *_, scoring = load_scored_run(scored_run)
    assert (scoring.checkpoint, scoring.threshold, scoring.flips) == ("best", 0.3, True)
    assert f"(as notebook 04 scored it: {runs.SCORING})" in scoring.describe()


def test_what_is_given_wins_over_the_record(scored_run: Path) -> None:
    *_, scoring = load_scored_run(scored_run, "best", threshold=0.6, flips=False)
    assert (scoring.threshold, scoring.flips, scoring.source) == (0.6, False, "given")
    *_, partly = load_scored_run(scored_run, threshold=0.7)  # the rest from the record
    assert (partly.checkpoint, partly.threshold, partly.flips) == ("best", 0.7, True)
    assert partly.source == f"threshold given, the rest as notebook 04 scored it: {runs.SCORING}"


def test_a_record_for_the_best_checkpoint_is_not_used_for_the_last(scored_run: Path) -> None:
    *_, scoring = load_scored_run(scored_run, "last")
    assert (scoring.checkpoint, scoring.threshold, scoring.flips) == ("last", 0.5, False)
    assert scoring.source == \
        f"checkpoint given, the rest defaults: {runs.SCORING} is for the best checkpoint"


def _edit_record(run: Path, **change: object) -> None:
    path = run / runs.SCORING
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


def test_a_record_for_other_bytes_gives_the_defaults_last_checkpoint_included(
        scored_run: Path) -> None:
    _edit_record(scored_run, checkpoint_sha256="0" * 64)  # as if best.pt had changed since
    *_, scoring = load_scored_run(scored_run)
    assert (scoring.checkpoint, scoring.threshold, scoring.flips) == ("last", 0.5, False)
    assert "was written for other weights, the best checkpoint of epoch" in scoring.source


def test_a_record_for_another_epoch_than_the_weights_loaded_is_not_used(
        scored_run: Path) -> None:
    # as when a crash left best.pt behind last.pt and the best weights come from last.pt
    epoch = json.loads((scored_run / runs.SCORING).read_text())["epoch"]
    _edit_record(scored_run, epoch=epoch + 1)
    *_, scoring = load_scored_run(scored_run)
    assert (scoring.checkpoint, scoring.threshold, scoring.flips) == ("best", 0.5, False)
    assert scoring.source == f"defaults: {runs.SCORING} is for epoch {epoch + 1}"


def test_scoring_weights_the_checkpoint_file_does_not_hold_is_not_recorded(
        scored_run: Path) -> None:
    _, epoch = load_trained(CONFIG, scored_run, "best")
    with pytest.warns(UserWarning, match=rf"best\.pt holds epoch {epoch}, not the scored "
                                         rf"epoch {epoch + 1}.*Resume the run"):
        runs.write_scoring(scored_run, "best", epoch + 1, 0.4, flips=False)
    assert not (scoring_file := scored_run / runs.SCORING).exists(), scoring_file


def test_a_record_for_weights_trained_further_is_not_used_and_says_so(
        scored_run: Path, synthetic_root: Path) -> None:
    runs.write_scoring(scored_run, "last", 2, 0.3, flips=True)
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    further = dataclasses.replace(CONFIG, epochs=3)
    fit(build_model(further), splits.train, splits.val, further, scored_run, resume=True,
        progress=False)
    *_, stale = load_scored_run(scored_run)
    assert (stale.checkpoint, stale.threshold, stale.flips) == ("last", 0.5, False)
    assert f"{runs.SCORING} was written for other weights" in stale.source


def test_training_afresh_removes_the_record(scored_run: Path, synthetic_root: Path) -> None:
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    fit(build_model(CONFIG), splits.train, splits.val, CONFIG, scored_run, fresh=True,
        progress=False)
    assert not (scored_run / runs.SCORING).exists()


def test_an_unreadable_record_says_to_delete_it_not_the_run(scored_run: Path) -> None:
    path = scored_run / runs.SCORING
    path.write_text(path.read_text()[:20])
    with pytest.raises(RunFolderError, match=r"cannot be read .*Delete it, or run notebook 04 "
                                             r"again") as raised:
        load_scored_run(scored_run)
    assert "Delete the folder" not in str(raised.value)
    *_, scoring = load_scored_run(scored_run, "last", 0.5, False)  # not read when not needed
    assert scoring.source == "given"


def test_a_record_nested_too_deep_to_parse_says_to_delete_it(scored_run: Path) -> None:
    (scored_run / runs.SCORING).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunFolderError, match=r"scoring\.json cannot be read .*Delete it, or run "
                                             r"notebook 04 again"):
        load_scored_run(scored_run)


@pytest.mark.parametrize("change", [{"threshold": 2.0}, {"test_time_flips": "yes"},
                                    {"checkpoint": "middle"}, {"epoch": True},
                                    {"epoch": 10**30}, {"epoch": 0}])
def test_a_damaged_record_is_named_with_what_to_do(scored_run: Path, change: dict,
                                                   tmp_path: Path, capsys) -> None:
    path = scored_run / runs.SCORING
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(RunFolderError, match="run notebook 04 again"):
        load_scored_run(scored_run)
    assert predict.main(["--run", str(scored_run), "--images", str(tmp_path),
                         "--out", str(tmp_path / "out")]) == 1
    assert f"{path} is not a scoring record" in capsys.readouterr().err


def test_predicted_masks_are_the_scored_ones(scored_run: Path, synthetic_root: Path,
                                             tmp_path: Path, capsys) -> None:
    model, config, size, _ = load_scored_run(scored_run, "best", 0.3, True)
    data = load_split(isic2016_split(synthetic_root, "test"), size, progress=False)
    probs = evaluate.predict(model, data, config, flips=True)
    assert predict.main(["--run", str(scored_run), "--images",
                         str(data.image_paths[0].parent), "--out", str(tmp_path)]) == 0
    assert re.search(r"best checkpoint \(epoch \d\), threshold 0.3, test-time flips",
                     capsys.readouterr().out)
    for prob, (height, width), sample_id in zip(probs, data.original_sizes, data.ids,
                                                strict=True):
        expected = (upsample(prob, int(height), int(width)) > 0.3) * 255
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{sample_id}_mask.png")),
                              expected)


def test_evaluation_scores_as_recorded_and_no_flips_turns_them_off(
        scored_run: Path, synthetic_root: Path, tmp_path: Path, capsys) -> None:
    layout = isic2016_split(synthetic_root, "test")
    *_, probs, _, scoring = evaluate.evaluate_folder(scored_run, layout.images_dir,
                                                    layout.masks_dir, progress=False)
    assert (scoring.checkpoint, scoring.threshold, scoring.flips) == ("best", 0.3, True)
    assert "threshold 0.3, test-time flips" in capsys.readouterr().out
    out = tmp_path / "scores"
    assert evaluate_command.main(["--run", str(scored_run), "--images", str(layout.images_dir),
                          "--masks", str(layout.masks_dir), "--no-flips", "--out", str(out)]) == 0
    assert "threshold 0.3, no flips (flips given, the rest as notebook 04 scored it" in \
        capsys.readouterr().out
    used = json.loads((out / "scored_with.json").read_text())
    assert (used["checkpoint"], used["threshold"], used["flips"]) == ("best", 0.3, False)
    model, config, *_ = load_scored_run(scored_run)
    data = load_split(layout, 64, progress=False)
    assert np.array_equal(probs, evaluate.predict(model, data, config, flips=True))


def test_the_onnx_file_carries_the_recorded_threshold_and_flips(scored_run: Path,
                                                                capsys) -> None:
    path = export_onnx(scored_run, scored_run / "model.onnx")
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    assert (meta["threshold"], meta["test_time_flips"]) == (0.3, True)
    assert "Exporting the best checkpoint" in capsys.readouterr().out
    assert export.main(["--run", str(scored_run), "--out", str(path), "--threshold", "0.6",
                        "--no-flips"]) == 0
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    assert (meta["threshold"], meta["test_time_flips"]) == (0.6, False)
