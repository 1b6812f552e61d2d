"""The papermill pipeline: promised files, tables built from the runs, clear failures."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from helpers import pipeline
from helpers.notebook import epoch_table
from helpers.presets import load_preset


@pytest.fixture(scope="module")
def smoke_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke_report")
    return pipeline.run("smoke", data_root=str(synthetic_root), output_dir=str(out),
                        overrides={"sample_ids": ["SYNTH_0026"]})


def test_pipeline_writes_every_promised_file(smoke_run: Path) -> None:
    for name in pipeline.NOTEBOOKS:
        assert (smoke_run / "notebooks" / f"{name}.ipynb").stat().st_size > 0
        assert (smoke_run / "html" / f"{name}.html").stat().st_size > 0
    report = (smoke_run / "report.html").read_text()
    assert "1. Data exploration" in report and "4. Comparing the two models" in report
    assert "SYNTHETIC" in report
    figures = {p.stem for p in (smoke_run / "figures").glob("*.png")}
    assert {"01_samples", "01_resize", "02_model1_curves", "03_model2_curves",
            "04_six_panel", "04_train_loss", "04_val_loss"} <= figures
    tables = {p.name for p in (smoke_run / "tables").iterdir()}
    for name in ("01_counts", "02_model1_epochs", "03_model2_epochs", "04_comparison",
                 "04_official_scores", "04_paired_dice"):
        assert f"{name}.csv" in tables and f"{name}.md" in tables


def test_comparison_table_comes_from_the_runs(smoke_run: Path) -> None:
    comparison = pd.read_csv(smoke_run / "tables" / "04_comparison.csv")
    for which in (1, 2):
        last = pd.read_csv(smoke_run / "runs" / f"model{which}" / "history.csv").iloc[-1]
        row = comparison.iloc[which - 1]
        assert row["Training Loss"] == pytest.approx(last["train_loss"])
        assert row["Validation Dice"] == pytest.approx(last["val_dice"])
    assert list(comparison["Trainable"]) == [1_594_314, 3_818_186]


def test_six_panel_and_official_scores_cover_both_models(smoke_run: Path) -> None:
    official = pd.read_csv(smoke_run / "tables" / "04_official_scores.csv", index_col=0)
    assert list(official.index) == ["model 1", "model 2"]
    per_image = pd.read_csv(smoke_run / "tables" / "04_official_per_image_model1.csv")
    assert official.loc["model 1", "dice"] == pytest.approx(per_image["dice"].mean())
    executed = (smoke_run / "notebooks" / "04_comparison.ipynb").read_text()
    assert "SYNTH_0026" in executed  # the requested sample id is in the figure's rows


def test_a_failing_notebook_is_named_and_earlier_output_kept(synthetic_root: Path,
                                                             tmp_path: Path) -> None:
    with pytest.raises(pipeline.NotebookFailed,
                       match=r"02_frozen_encoder\.ipynb failed in cell \d+.*loss must be"):
        pipeline.run("smoke", data_root=str(synthetic_root), output_dir=str(tmp_path),
                     overrides={"loss": "nonsense"})
    assert (tmp_path / "notebooks" / "01_data_exploration.ipynb").exists()
    assert (tmp_path / "notebooks" / "02_frozen_encoder.ipynb").exists()
    assert (tmp_path / "figures" / "01_samples.png").exists()


def test_missing_data_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="challenge.isic-archive.com"):
        pipeline.check_data(str(tmp_path / "isic2016"))


def test_presets_expand_environment_variables(monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_ISIC2016", "/data/isic")
    assert load_preset("report_a")["data_root"] == "/data/isic"
    monkeypatch.delenv("LESIONKIT_ISIC2016")
    assert load_preset("report_a")["data_root"] == "data/isic2016"
    assert load_preset("report_b")["epochs"] == 25
    with pytest.raises(ValueError, match="Unknown preset"):
        load_preset("nope")


def test_epoch_table_has_the_reports_rows() -> None:
    history = pd.DataFrame({"epoch": range(1, 26), "train_loss": 0.1, "val_loss": 0.2,
                            "val_iou": 0.5, "val_dice": 0.6})
    assert list(epoch_table(history)["Epoch"]) == [1, 10, 20, 25]
    assert list(epoch_table(history).columns) == [
        "Epoch", "Training Loss", "Validation Loss", "Validation IoU", "Validation Dice score"]


def test_six_panel_has_the_six_column_titles(synthetic_root: Path) -> None:
    import numpy as np

    from helpers import plots
    from helpers.dataset import isic2016_split, load_split
    data = load_split(isic2016_split(synthetic_root, "test"), size=32, progress=False)
    probs = np.random.default_rng(0).random(data.masks.shape)
    fig = plots.six_panel(data, [0, 1], probs, probs, "title")
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["image", "true mask", "model 1 (soft)", "model 1 > 0.5",
                      "model 2 (soft)", "model 2 > 0.5"]
    assert [ax.get_ylabel() for ax in fig.axes[::6]] == data.ids[:2]


def test_the_pipeline_leaves_the_test_preset_variable_alone(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LESIONKIT_PRESET", "smoke")
    monkeypatch.setattr(pipeline, "execute", lambda *args: pytest.fail("should not run"))
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ())
    monkeypatch.setattr(pipeline, "export_html", lambda *args: None)
    pipeline.run("demo", output_dir=str(tmp_path))
    assert os.environ["LESIONKIT_PRESET"] == "smoke"
