"""The zoom-out robustness table: each run scored as notebook 04 scored it, on the test images
as they are (the same scores as evaluating the folder) and on zoomed-out copies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import runs
from helpers.commands.robustness import SCORES, TABLE, main, zoom_out_robustness
from helpers.config import TrainConfig
from helpers.evaluate import evaluate_folder
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.model import build_model
from helpers.runs import load_trained
from helpers.train import fit

CONFIG = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)


@pytest.fixture(scope="module")
def two_runs(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two one-epoch runs: one scored with flips at 0.3, one never scored (the defaults)."""
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    folder = tmp_path_factory.mktemp("runs")
    scored, plain = folder / "scored", folder / "plain"
    for run in (scored, plain):
        fit(build_model(CONFIG), splits.train, splits.val, CONFIG, run, progress=False)
    _, epoch = load_trained(CONFIG, scored, "best")
    runs.write_scoring(scored, "best", epoch, 0.3, flips=True)
    return {"scored model": scored, "plain model": plain}


def test_each_run_is_scored_as_notebook_04_scored_it_on_every_zoom(
        two_runs: dict[str, Path], synthetic_root: Path) -> None:
    table = zoom_out_robustness(two_runs, synthetic_root, (1.0, 0.5), progress=False)
    assert list(table["test images"]) == ["original", "original", "zoomed out x0.5",
                                          "zoomed out x0.5"]
    assert list(table["model"]) == ["scored model", "plain model"] * 2
    assert table["evaluated with"][0].endswith(", flips, threshold 0.3")
    assert table["evaluated with"][1].startswith("last checkpoint")
    assert table["evaluated with"][1].endswith("threshold 0.5")
    test = isic2016_split(synthetic_root, "test")
    _, macro, *_ = evaluate_folder(two_runs["scored model"], test.images_dir, test.masks_dir,
                                   progress=False)
    assert list(table.loc[0, list(SCORES)]) == [macro[score] for score in SCORES]
    zoomed = table.loc[2, list(SCORES)]  # scored on other images: other scores
    assert list(zoomed) != list(table.loc[0, list(SCORES)])
    assert zoomed.between(0, 1).all()


def test_the_command_writes_the_table_and_names_a_missing_run(
        two_runs: dict[str, Path], synthetic_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = f"plain={two_runs['plain model']}"
    assert main(["--run", run, "--data-root", str(synthetic_root), "--out", str(tmp_path),
                 "--factors", "1"]) == 0
    written = pd.read_csv(tmp_path / "tables" / f"{TABLE}.csv")
    assert list(written["model"]) == ["plain"]
    assert (tmp_path / "tables" / f"{TABLE}.md").is_file()
    missing = tmp_path / "no_such_run"
    assert main(["--run", f"gone={missing}", "--data-root", str(synthetic_root),
                 "--out", str(tmp_path), "--factors", "1"]) == 1
    assert str(missing) in capsys.readouterr().err
