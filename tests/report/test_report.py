"""The report command: promised files, tables built from the runs, clear failures, safe
output folders, no machine paths in what it writes."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pypdf
import pypdfium2
import pytest
import torch
from PIL import Image

from helpers import report
from helpers.config import REPO_ROOT, load_config
from helpers.errors import ConfigError, DatasetError, NotebookFailed, OutputFolderError
from helpers.paths import public_path
from helpers.report import make, pdf
from helpers.report.html import report_document
from helpers.report.notebooks import (
    KERNEL_ARGUMENTS,
    NOTEBOOKS,
    epoch_progress,
    notebook_parameters,
)
from helpers.report.privacy import hide_machine_folders, without_machine_folders
from helpers.system import device


@pytest.fixture(scope="module")
def smoke_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke_report")
    return report.make_report("smoke", data_root=synthetic_root, output_dir=out,
                              overrides={"sample_ids": ["SYNTH_0026"]})


@pytest.mark.notebooks
def test_report_writes_every_promised_file(smoke_run: Path) -> None:
    for name in NOTEBOOKS:
        assert (smoke_run / "notebooks" / f"{name}.ipynb").stat().st_size > 0
        assert (smoke_run / "html" / f"{name}.html").stat().st_size > 0
    html = (smoke_run / "report.html").read_text()
    assert "1. Data exploration" in html and "4. Comparing the two models" in html
    assert "SYNTHETIC" in html
    figures = {p.stem for p in (smoke_run / "figures").glob("*.png")}
    assert {"01_samples", "01_resize", "02_model1_curves", "03_model2_curves",
            "04_six_panel", "04_train_loss", "04_val_loss"} <= figures
    tables = {p.name for p in (smoke_run / "tables").iterdir()}
    for name in ("01_counts", "02_model1_epochs", "03_model2_epochs", "04_comparison",
                 "04_official_scores", "04_paired_dice"):
        assert f"{name}.csv" in tables and f"{name}.md" in tables


@pytest.mark.notebooks
def test_comparison_table_comes_from_the_runs(smoke_run: Path) -> None:
    comparison = pd.read_csv(smoke_run / "tables" / "04_comparison.csv")
    assert list(comparison["Model"]) == ["Model 1", "Model 2"]
    for row, name in zip(comparison.itertuples(), ("frozen", "fine_tuned"), strict=True):
        last = pd.read_csv(smoke_run / "runs" / name / "history.csv").iloc[-1]
        assert row._4 == pytest.approx(last["train_loss"])  # "Training Loss"
        assert row._7 == pytest.approx(last["val_dice"])  # "Validation Dice"
    assert list(comparison["Trainable"]) == [1_594_314, 3_818_186]


@pytest.mark.notebooks
def test_six_panel_and_official_scores_cover_both_models(smoke_run: Path) -> None:
    official = pd.read_csv(smoke_run / "tables" / "04_official_scores.csv", index_col=0)
    assert list(official.index) == ["Model 1", "Model 2"]
    per_image = pd.read_csv(smoke_run / "tables" / "04_official_per_image_frozen.csv")
    assert official.loc["Model 1", "dice"] == pytest.approx(per_image["dice"].mean())
    executed = (smoke_run / "notebooks" / "04_comparison.ipynb").read_text()
    assert "SYNTH_0026" in executed  # the requested sample id is in the figure's rows


@pytest.mark.notebooks
def test_the_run_takes_the_settings_it_was_given(smoke_run: Path) -> None:
    executed = json.loads((smoke_run / "notebooks" / "02_frozen_encoder.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get(
        "tags", [])]
    assert len(injected) == 1 and "preset = \"smoke\"" in "".join(injected[0]["source"])
    history = pd.read_csv(smoke_run / "runs" / "frozen" / "history.csv")
    assert list(history["epoch"]) == [1, 2]  # smoke.yaml: train.epochs 2


@pytest.mark.notebooks
def test_no_machine_paths_in_the_outputs(smoke_run: Path) -> None:
    for path in [*(smoke_run / "notebooks").glob("*.ipynb"), smoke_run / "report.html"]:
        text = path.read_text()
        assert str(REPO_ROOT) not in text, path
        assert "PosixPath(" not in text, path


@pytest.mark.notebooks
def test_a_failing_notebook_is_named_and_earlier_output_kept(synthetic_root: Path,
                                                             tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(make, "NOTEBOOKS", NOTEBOOKS[:2])
    # Data with an unreadable image: 01 fails in its loading cell, naming the file.
    broken = tmp_path / "data"
    shutil.copytree(synthetic_root, broken)
    bad = broken / "ISBI2016_ISIC_Part1_Training_Data" / "SYNTH_0003.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(NotebookFailed,
                       match=r"01_data_exploration\.ipynb failed in cell \d+.*SYNTH_0003\.jpg"):
        report.make_report("smoke", data_root=broken, output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "notebooks" / "01_data_exploration.ipynb").exists()


def test_a_misspelt_preset_key_fails_before_any_notebook_runs(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(make, "execute", lambda *a: pytest.fail("a notebook ran"))
    preset = tmp_path / "mine.yaml"
    preset.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown key 'train\.epoch'"):
        report.make_report(str(preset), output_dir=tmp_path / "out")
    assert report.main(["--preset", str(preset), "--output-dir", str(tmp_path / "o")]) == 1


def test_missing_data_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="challenge.isic-archive.com"):
        make.check_data(tmp_path / "isic2016")


@pytest.mark.parametrize("folder", [".", "notebooks", "notebooks/out", "helpers"])
def test_output_folder_over_the_kits_sources_is_refused(folder: str, monkeypatch) -> None:
    monkeypatch.setattr(make, "execute", lambda *a: pytest.fail("a notebook ran"))
    with pytest.raises(OutputFolderError, match="would overwrite the kit's own"):
        report.make_report("demo", output_dir=REPO_ROOT / folder)


def test_output_folder_that_is_a_file_gives_one_line(tmp_path: Path, capsys) -> None:
    target = tmp_path / "report.txt"
    target.write_text("mine")
    assert report.main(["--preset", "demo", "--output-dir", str(target)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is a file, not a folder" in error
    assert target.read_text() == "mine"


def test_relative_output_dir_is_taken_from_the_current_folder(tmp_path: Path,
                                                              monkeypatch) -> None:
    seen = {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(make, "make_report",
                        lambda preset, data_root, output_dir: seen.update(out=output_dir))
    assert report.main(["--preset", "demo", "--output-dir", "here"]) == 0
    assert seen["out"] == tmp_path / "here"


def test_notebook_parameters_are_relative_to_the_repository(tmp_path: Path) -> None:
    config = load_config("demo", output_dir="reports/x")
    parameters = notebook_parameters(config, {"seed": 1})
    assert parameters == {"preset": "demo", "data_root": "data/synthetic",
                          "output_dir": "reports/x", "overrides": {"seed": 1}}


MACHINE_PATHS = ("/root/", "/home/", "/work/", "/tmp/")


@pytest.mark.notebooks
def test_no_file_of_the_report_names_a_folder_of_the_machine(smoke_run: Path) -> None:
    # The smoke run's data and output folders both lie outside the kit (pytest's tmp).
    # In runs/ (not handed in) the text files count too; checkpoints and images there do not.
    handed_in = [p for p in smoke_run.rglob("*")
                 if p.is_file() and (p.relative_to(smoke_run).parts[0] != "runs"
                                     or p.suffix in (".json", ".csv"))]
    assert {"report.html", "report.pdf"} <= {p.name for p in handed_in}
    for path in sorted(handed_in):
        if path.suffix == ".pdf":
            reader = pypdf.PdfReader(path)
            text = "".join(page.extract_text() for page in reader.pages)
            text += str(reader.metadata)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        for machine in (str(REPO_ROOT), *MACHINE_PATHS):
            assert machine not in text, f"{path.relative_to(smoke_run)} names {machine}"


def test_paths_printed_by_a_cell_are_shown_as_the_report_shows_folders(tmp_path: Path) -> None:
    data_root = tmp_path / "my data"
    warning = (f"{REPO_ROOT}/helpers/data.py:413: UserWarning: Mask {data_root}/masks/x.png: "
               f"a tiny lesion vanished")
    cell = nbformat.v4.new_code_cell("load()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=warning),
                    nbformat.v4.new_output("error", ename="DatasetError",
                                           evalue=f"Cannot read {data_root}/y.jpg",
                                           traceback=[f"File {REPO_ROOT}/helpers/data.py"])]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["papermill"] = {"parameters": {"data_root": str(data_root)}}
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    hide_machine_folders(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert outputs[0]["text"] == ("./helpers/data.py:413: UserWarning: Mask <outside the kit>/"
                                  "my data/masks/x.png: a tiny lesion vanished")
    assert outputs[1]["evalue"] == "Cannot read <outside the kit>/my data/y.jpg"
    assert outputs[1]["traceback"] == ["File ./helpers/data.py"]


def test_the_path_scrub_replaces_whole_folder_names_only() -> None:
    folders = [("/work/kit", "."), ("/work", "..")]
    text = "/work/kit/a.py, /work/kit-old/b.py, /workspace/c, (/work/kit)"
    assert without_machine_folders(text, folders) == \
        "./a.py, ../kit-old/b.py, /workspace/c, (.)"


@pytest.mark.notebooks
def test_report_html_puts_the_results_first_and_hides_the_setup_code(smoke_run: Path) -> None:
    page = (smoke_run / "report.html").read_text()
    for shown in ("Smoke test", "SYNTHETIC lesions", "Kit commit", "PyTorch", "Device",
                  "Results summary", "Contents", "Wilcoxon p", "threshold Jaccard"):
        assert shown in page, shown
    assert page.index("Results summary") < page.index("Contents") < page.index(
        'id="ch01-1.-Data-exploration"')
    if "<dd>cpu" in page:  # what decides a CPU run's bits besides torch's release
        assert re.search(r"<dd>cpu: [^<]+ \([^()<]+ kernels, \d+ threads\)</dd>", page)
    assert page.count("data:image/png;base64,") >= 3 + 4  # summary figures and chapters'
    assert 'src="http' not in page and "figures/04_" not in page  # one self-contained file
    assert "load_config(preset" not in page  # the set-up cells' code is hidden...
    assert 'preset = "smoke"' not in page  # ...and so are the parameters
    assert page.count('class="highlight') >= 8 and "build_model" in page  # teaching code stays
    # each chapter's heading anchors are unique, and the contents link to them
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert all(f'id="{target}"' in page for target in re.findall(r'href="#([^"]+)"', page))


@pytest.mark.notebooks
def test_report_pdf_has_the_summary_and_pages_that_are_not_blank(smoke_run: Path) -> None:
    printed = smoke_run / "report.pdf"
    reader = pypdf.PdfReader(printed)
    assert len(reader.pages) >= 2
    first = reader.pages[0].extract_text()
    assert "Results summary" in first and "Model 1" in first and "Validation" in first
    document = pypdfium2.PdfDocument(str(printed))
    try:
        pixels = np.asarray(document[0].render(scale=0.5).to_pil().convert("L"))
    finally:
        document.close()
    assert (pixels < 128).mean() > 0.01  # text, tables and the six-panel figure
    preview = Image.open(smoke_run / "report-page1.png")  # the same page, written as a PNG
    assert preview.width > 500 and (np.asarray(preview.convert("L")) < 128).mean() > 0.01


def test_the_title_block_names_the_cpu_model(synthetic_root: Path, monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_model", lambda: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz")
    config = load_config("smoke", data_root=synthetic_root, overrides={"device": "cpu"})
    info = make.report_info(config)
    assert re.fullmatch(r"cpu: Intel\(R\) Xeon\(R\) Gold 6338 CPU @ 2\.00GHz "
                        r"\([^()]+ kernels, \d+ threads\)", info.device), info.device
    assert info.torch == torch.__version__ and "SYNTHETIC" in info.data
    page = report_document(info, "", [])
    assert "<dt>Device</dt><dd>cpu: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz (" in page


def test_the_title_block_names_this_machines_processor() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.partition(":")[2].strip() for line in
             (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.partition(":")[0].strip() == "model name"]
    if not names:
        pytest.skip("no processor model name in /proc/cpuinfo")
    assert make.describe_device("cpu").startswith(f"cpu: {' '.join(names[0].split())} (")


def test_the_title_block_names_the_gpu(synthetic_root: Path, monkeypatch) -> None:
    monkeypatch.setattr(make, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name",
                        lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    info = make.report_info(load_config("smoke", data_root=synthetic_root))
    assert info.device == "cuda: NVIDIA H100 80GB HBM3 (bfloat16 autocast)"
    assert ("<dt>Device</dt><dd>cuda: NVIDIA H100 80GB HBM3 (bfloat16 autocast)</dd>"
            in report_document(info, "", []))


def test_the_report_says_why_the_pdf_was_skipped_without_weasyprint(tmp_path: Path,
                                                                    monkeypatch) -> None:
    # As pdf.py's import leaves it when WeasyPrint (or its pango library) cannot be loaded.
    monkeypatch.setattr(pdf, "weasyprint", None)
    monkeypatch.setattr(pdf, "WEASYPRINT_PROBLEM", "No module named 'weasyprint'")
    page = tmp_path / "report.html"
    page.write_text("<html><body>x</body></html>")
    written, said = pdf.export_pdf(page)
    assert written is None and not (tmp_path / "report.pdf").exists()
    assert "report.pdf skipped" in said and "pip install weasyprint" in said


def test_paths_outside_the_kit_are_shown_by_name_only() -> None:
    assert public_path("reports/x") == "reports/x"
    assert public_path(REPO_ROOT / "data" / "isic2016") == "data/isic2016"
    assert public_path("/tmp/pytest/run_7") == "<outside the kit>/run_7"


def test_the_kernel_start_warning_is_silenced(tmp_path: Path, capfd) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                       "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "n.ipynb")
    papermill.execute_notebook(str(tmp_path / "n.ipynb"), str(tmp_path / "out.ipynb"),
                               progress_bar=False, extra_arguments=KERNEL_ARGUMENTS)
    assert "without encryption" not in capfd.readouterr().err


def test_the_console_follows_a_training_notebooks_epochs(tmp_path: Path, capsys) -> None:
    config = load_config("smoke", output_dir=tmp_path)  # 2 epochs
    history = config.run_dir("frozen") / "history.csv"
    history.parent.mkdir(parents=True)
    with epoch_progress(config, "02_frozen_encoder", interval=0.05):
        history.write_text("epoch\n1\n")
        time.sleep(0.3)
        history.write_text("epoch\n1\n2\n")
        time.sleep(0.3)
    console = capsys.readouterr().err
    assert "frozen epochs" in console and "2/2" in console
    with epoch_progress(config, "01_data_exploration"):
        pass  # no training there: no bar
    assert capsys.readouterr().err == ""
