"""Make the report of a run: execute the four notebooks with papermill, export them to HTML.

    python -m helpers.report --preset demo
    python -m helpers.report --preset report_a --data-root /path/to/isic2016

writes ``reports/<preset>/`` (or ``--output-dir``)::

    notebooks/NN_*.ipynb   the executed notebooks
    html/NN_*.html         each one exported with nbconvert
    report.html            all four in one page
    figures/*.png          every figure
    tables/*.csv, *.md     every table
    runs/<model>/          histories and checkpoints (not committed)

The preset is loaded and checked before any notebook runs, so a misspelt key or an invalid
value fails in a second. A failing notebook stops the run naming the notebook and the cell;
what was written stays, and training resumes where it stopped on the next run.
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
from helpers.config import (
    REPO_ROOT,
    ConfigError,
    RunConfig,
    available_presets,
    display_path,
    load_config,
)
from helpers.data import ISIC2016_FOLDERS, DatasetError
from helpers.paths import SYNTHETIC_ROOT

NOTEBOOKS = ("01_data_exploration", "02_frozen_encoder", "03_fine_tuning", "04_comparison")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: Folders of the kit's own source that an output folder must neither be, hold nor lie in.
SOURCE_FOLDERS = ("notebooks", "helpers", "presets", "tests", "scripts", "benchmarks", ".ci",
                  ".git")


class NotebookFailed(RuntimeError):
    """A notebook raised an error; the message names the notebook and the cell."""


class OutputFolderError(ValueError):
    """An output folder that would overwrite the kit's own files, or is not a folder."""


def check_data(data_root: Path) -> None:
    """Stop early, with instructions, when the ISIC data is not where the run expects it."""
    if data_root == SYNTHETIC_ROOT:
        return
    folders = [f for pair in ISIC2016_FOLDERS.values() for f in pair]
    missing = [f for f in folders if not (data_root / f).is_dir()]
    if missing:
        raise DatasetError(
            f"The ISIC 2016 Part 1 data is not in {data_root} (missing: {', '.join(missing)}).\n"
            "Download the four Part 1 zips (training data and ground truth, test data and "
            "ground truth) from https://challenge.isic-archive.com/data/#2016, unzip them into "
            "that folder, or pass --data-root PATH. To try the kit without the data, run "
            "`python -m helpers.report --preset demo` (SYNTHETIC lesions).")


def check_output_dir(output_dir: Path) -> None:
    """Refuse an output folder that is, holds or lies inside the kit's source folders (the
    executed notebooks would overwrite ``notebooks/``), or that is a file."""
    target = output_dir.resolve()
    for name in SOURCE_FOLDERS:
        source = (REPO_ROOT / name).resolve()
        if target == source or source.is_relative_to(target) or target.is_relative_to(source):
            raise OutputFolderError(
                f"Output folder {output_dir} would overwrite the kit's own {name}/ folder; "
                "choose a folder such as reports/<name>.")
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"Output folder {output_dir} is a file, not a folder.")


def notebook_parameters(config: RunConfig, overrides: dict) -> dict:
    """The four parameters every notebook takes, with paths relative to the repository."""
    return {"preset": config.preset,
            "data_root": os.path.relpath(config.data_root, REPO_ROOT),
            "output_dir": os.path.relpath(config.output_dir, REPO_ROOT),
            "overrides": overrides}


def execute(name: str, parameters: dict, out_dir: Path) -> Path:
    """Execute one notebook with papermill; raise :class:`NotebookFailed` naming the cell."""
    source = NOTEBOOK_DIR / f"{name}.ipynb"
    target = out_dir / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(target), cwd=str(REPO_ROOT),
                                   progress_bar=False, parameters=parameters)
    except papermill.PapermillExecutionError as error:
        raise NotebookFailed(f"{name}.ipynb failed in cell {error.cell_index} (execution count "
                             f"{error.exec_count}): {error.ename}: {error.evalue}. The executed "
                             f"notebook up to the error is {target}") from error
    finally:
        _relative_paths_in_metadata(target)
    return target


def _relative_paths_in_metadata(path: Path) -> None:
    """papermill records the notebooks' absolute paths; keep only repository-relative ones."""
    if not path.exists():
        return
    notebook = nbformat.read(path, as_version=4)
    recorded = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if recorded.get(key):
            recorded[key] = display_path(recorded[key])
    write_text(path, nbformat.writes(notebook))


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


def make_report(preset: str, data_root: str | Path | None = None,
                output_dir: str | Path | None = None, overrides: dict | None = None) -> Path:
    """Check the configuration, run the four notebooks and export the report; return the
    output folder. Relative paths are taken from the repository root."""
    overrides = overrides or {}
    config = load_config(preset, data_root=data_root, output_dir=output_dir,
                         overrides=overrides)
    check_output_dir(config.output_dir)
    check_data(config.data_root)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(config, overrides)
    executed = []
    bar = tqdm(NOTEBOOKS, desc=config.preset, unit="notebook")
    for name in bar:
        bar.set_postfix_str(name)
        began = time.perf_counter()
        executed.append(execute(name, parameters, config.output_dir))
        tqdm.write(f"{name}: {time.perf_counter() - began:.0f} s")
    report = export_html(executed, config.output_dir, f"lesionkit - {config.title}")
    print(f"Done: {display_path(report)}")
    return config.output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo",
                        help=f"one of {', '.join(available_presets())}, or a .yaml file")
    parser.add_argument("--data-root", help="ISIC 2016 Part 1 folder (default: the preset's, "
                        "else $LESIONKIT_ISIC2016, else data/isic2016)")
    parser.add_argument("--output-dir", help="default: reports/<preset>")
    args = parser.parse_args(argv)
    # As every command-line tool does, relative paths are taken from the current directory.
    data_root = Path(args.data_root).resolve() if args.data_root else None
    output_dir = Path(args.output_dir).resolve() if args.output_dir else None
    try:
        make_report(args.preset, data_root, output_dir)
    except (ConfigError, DatasetError, OutputFolderError, NotebookFailed) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
