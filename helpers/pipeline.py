"""Run the four notebooks for a preset with papermill and export the report.

    python -m helpers.pipeline --preset demo
    python -m helpers.pipeline --preset report_a --data-root /path/to/isic2016

writes ``reports/<preset>/``::

    notebooks/NN_*.ipynb   the executed notebooks
    html/NN_*.html         each one exported with nbconvert
    report.html            all four in one page
    figures/*.png          every figure
    tables/*.csv, *.md     every table
    runs/model{1,2}/       histories and checkpoints (not committed)

A failing notebook stops the run with its name and cell; what was written stays.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter
from tqdm.auto import tqdm

from helpers.atomic import write_text
from helpers.dataset import ISIC2016_FOLDERS
from helpers.presets import (
    REPO_ROOT,
    SYNTHETIC_ROOT,
    available_presets,
    load_preset,
    resolve_path,
)

NOTEBOOKS = ("01_data_exploration", "02_frozen_encoder", "03_fine_tuning", "04_comparison")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised an error; the message names the notebook and the cell."""


def check_data(data_root: str) -> None:
    """Stop early, with instructions, when the ISIC data is not where the preset says."""
    root = resolve_path(data_root)
    if root == SYNTHETIC_ROOT:
        return
    folders = [f for pair in ISIC2016_FOLDERS.values() for f in pair]
    missing = [f for f in folders if not (root / f).is_dir()]
    if missing:
        raise SystemExit(
            f"The ISIC 2016 Part 1 data is not in {root} (missing: {', '.join(missing)}).\n"
            "Download the four Part 1 zips (training data and ground truth, test data and "
            "ground truth) from https://challenge.isic-archive.com/data/#2016, unzip them into "
            "that folder, or pass --data-root PATH. To try the kit without the data, run "
            "`python -m helpers.pipeline --preset demo` (SYNTHETIC lesions).")


def execute(name: str, parameters: dict, out_dir: Path) -> Path:
    """Execute one notebook with papermill; raise :class:`NotebookFailed` naming the cell."""
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    target = out_dir / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    accepted = papermill.inspect_notebook(str(source))
    try:
        papermill.execute_notebook(
            str(source), str(target), cwd=str(REPO_ROOT), progress_bar=False,
            parameters={k: v for k, v in parameters.items() if k in accepted})
    except papermill.PapermillExecutionError as error:
        raise NotebookFailed(f"{name}.ipynb failed in cell {error.cell_index} (execution count "
                             f"{error.exec_count}): {error.ename}: {error.evalue}. The executed "
                             f"notebook up to the error is {target}") from error
    return target


def export_html(executed: list[Path], out_dir: Path, title: str) -> Path:
    """One HTML file per notebook plus ``report.html`` with all of them in order."""
    exporter = HTMLExporter()
    html_dir = out_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    combined = None
    for path in executed:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook)
        for cell in notebook.cells:  # cell ids must stay unique in the combined notebook
            cell["id"] = f"{path.stem[:2]}-{cell['id']}"
        write_text(html_dir / f"{path.stem}.html", body)
        if combined is None:
            combined = copy.deepcopy(notebook)
        else:
            combined.cells.extend(notebook.cells)
    combined.metadata["title"] = title
    body, _ = exporter.from_notebook_node(combined)
    report = out_dir / "report.html"
    write_text(report, body)
    return report


def run(preset: str, data_root: str | None = None, output_dir: str | None = None,
        overrides: dict | None = None) -> Path:
    """Run the whole pipeline for ``preset``; return the output folder."""
    parameters = load_preset(preset)
    if data_root:
        parameters["data_root"] = data_root
    if output_dir:
        parameters["output_dir"] = output_dir
    parameters.update(overrides or {})
    check_data(parameters["data_root"])
    out_dir = resolve_path(parameters["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    # The notebooks must take *these* parameters, not a test preset from the environment.
    test_preset = os.environ.pop("LESIONKIT_PRESET", None)
    executed = []
    try:
        bar = tqdm(NOTEBOOKS, desc=f"{preset}", unit="notebook")
        for name in bar:
            bar.set_postfix_str(name)
            began = time.perf_counter()
            executed.append(execute(name, parameters, out_dir))
            tqdm.write(f"{name}: {time.perf_counter() - began:.0f} s")
    finally:
        if test_preset is not None:
            os.environ["LESIONKIT_PRESET"] = test_preset
    report = export_html(executed, out_dir, f"lesionkit - {parameters['title']}")
    print(f"Done: {report}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo", choices=available_presets())
    parser.add_argument("--data-root", help="ISIC 2016 Part 1 folder (overrides the preset)")
    parser.add_argument("--output-dir", help="default: reports/<preset>")
    args = parser.parse_args(argv)
    try:
        run(args.preset, args.data_root, args.output_dir)
    except NotebookFailed as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
