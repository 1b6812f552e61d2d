"""Make the report of a run: execute the four notebooks with papermill, export them to HTML.

    python -m helpers.report --preset demo
    python -m helpers.report --preset report_a --data-root /path/to/isic2016

writes ``reports/<preset>/`` (or ``--output-dir``)::

    notebooks/NN_*.ipynb   the executed notebooks
    html/NN_*.html         each one exported with nbconvert
    report.html            the report to hand in: title block, results summary, contents, then
                           the four chapters (set-up and parameter code hidden); one file
    report.pdf             the same, printed by WeasyPrint (skipped, with the reason, without it)
    figures/*.png          every figure
    tables/*.csv, *.md     every table
    runs/<model>/          histories and checkpoints (not committed)

The preset is loaded and checked before any notebook runs, so a misspelt key or an invalid
value fails in a second. A failing notebook stops the run naming the notebook and the cell;
what was written stays, and training resumes where it stopped on the next run.

A report leaves the machine that made it, so nothing written names a folder of that machine:
paths inside the kit (or beside it, ``../shared/...``) are shown relative to it, any other
folder only by its name (``<outside the kit>/isic2016``).

The title block names what decides a run's bits besides its settings: the torch release, the
kit's commit and the device. On a CPU that is the processor, the kernels torch computes with
and its threads (the notebooks' kernels inherit the kit's kernel cap); on a GPU, its model.

The steps live beside this module: ``notebooks`` (papermill), ``privacy`` (the machine's
folders kept out), ``html`` (report.html, styled by ``report.css``) and ``pdf`` (report.pdf).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers.commands.cli import run_command
from helpers.config import RunConfig, available_presets, load_config
from helpers.errors import DatasetError, OutputFolderError
from helpers.isic2016 import describe, load_splits
from helpers.paths import ISIC2016_FOLDERS, REPO_ROOT, SYNTHETIC_ROOT, display_path
from helpers.report.html import ReportInfo, export_html
from helpers.report.notebooks import NOTEBOOKS, epoch_progress, execute, notebook_parameters
from helpers.report.pdf import export_pdf
from helpers.system.device import describe_cpu, describe_precision, resolve_device
from helpers.system.writable import output_folder

#: Folders of the kit's own source that an output folder must neither be, hold nor lie in.
SOURCE_FOLDERS = ("notebooks", "helpers", "presets", "tests", "scripts", "benchmarks", ".ci",
                  ".git")


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


def _git(*args: str) -> str:
    """What ``git ARGS`` prints in the kit's folder."""
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=20).stdout.strip()


def kit_commit() -> str:
    """The kit's short git commit (``+ local changes`` when its code differs from it; the
    generated ``reports/`` do not count), or ``"unknown"`` outside a git checkout."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                       ":(exclude)reports")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + local changes" if changed else commit


def describe_device(name: str, amp: bool = True) -> str:
    """The device ``name`` resolves to, as the title block shows it: ``cpu: <processor>
    (<kernels> kernels, <n> threads)`` on a CPU, ``cuda: <GPU model> (<precision>)`` on a CUDA
    GPU (``amp``: autocast wanted)."""
    device = resolve_device(name)
    if device.type == "cpu":
        return f"cpu: {describe_cpu()}"
    if device.type == "cuda":
        return (f"{device}: {torch.cuda.get_device_name(device)} "
                f"({describe_precision(device, amp)})")
    return str(device)


def report_info(config: RunConfig) -> ReportInfo:
    """The title block of ``config``'s run, made on this machine now."""
    splits = load_splits(config, progress=False)  # decoded by the notebooks: a cache hit
    counts = f"{len(splits.train)} training, {len(splits.val)} validation, " \
             f"{len(splits.test)} test images" if splits.validation == "holdout" else \
             f"{len(splits.train)} training, {len(splits.test)} test images"
    return ReportInfo(title=config.title,
                      data=f"{describe(splits, config.data_root)}: {counts} at "
                           f"{config.image_size}x{config.image_size}",
                      date=datetime.date.today().isoformat(), commit=kit_commit(),
                      torch=torch.__version__,
                      device=describe_device(config.device, config.fine_tuned.amp))


def make_report(preset: str, data_root: str | Path | None = None,
                output_dir: str | Path | None = None, overrides: dict | None = None) -> Path:
    """Check the configuration, run the four notebooks and export the report; return the
    output folder. Relative paths are taken from the repository root."""
    overrides = overrides or {}
    config = load_config(preset, data_root=data_root, output_dir=output_dir,
                         overrides=overrides)
    check_output_dir(config.output_dir)
    check_data(config.data_root)
    output_folder(config.output_dir).mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(config, overrides)
    executed = []
    bar = tqdm(NOTEBOOKS, desc=config.preset, unit="notebook")
    for name in bar:
        bar.set_postfix_str(name)
        began = time.perf_counter()
        with epoch_progress(config, name):
            executed.append(execute(name, parameters, config.output_dir))
        tqdm.write(f"{name}: {time.perf_counter() - began:.0f} s")
    report = export_html(executed, config.output_dir, report_info(config))
    _, said = export_pdf(report)
    print(f"Done: {display_path(report)}\n{said}")
    return config.output_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.report [--preset P] [--data-root D] [--output-dir O]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="demo",
                        help=f"one of {', '.join(available_presets())}, or a .yaml file")
    parser.add_argument("--data-root", help="ISIC 2016 Part 1 folder (default: the preset's, "
                        "else $LESIONKIT_ISIC2016, else data/isic2016)")
    parser.add_argument("--output-dir", help="default: reports/<preset>")
    return run_command(parser, report, argv)


def report(args: argparse.Namespace) -> int:
    """Make the report the arguments ask for. As with every command-line tool, relative paths
    are taken from the current directory."""
    data_root = Path(args.data_root).resolve() if args.data_root else None
    output_dir = Path(args.output_dir).resolve() if args.output_dir else None
    make_report(args.preset, data_root, output_dir)
    return 0
