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
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import papermill
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from papermill.translators import PythonTranslator
from PIL import Image
from pygments.formatters import HtmlFormatter
from tqdm.auto import tqdm

from helpers.atomic import atomic_path, write_text
from helpers.config import (
    REPO_ROOT,
    ConfigError,
    RunConfig,
    available_presets,
    display_path,
    load_config,
)
from helpers.data import ISIC2016_FOLDERS, DatasetError, describe, load_splits
from helpers.paths import SYNTHETIC_ROOT, public_path, resolve_path

NOTEBOOKS = ("01_data_exploration", "02_frozen_encoder", "03_fine_tuning", "04_comparison")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: Set while notebooks run headless (papermill, nbmake): 04 then shows no live widget, which
#: is inert in a saved notebook anyway and once left papermill waiting for ever after its cell.
HEADLESS_VARIABLE = "LESIONKIT_HEADLESS"
#: Folders of the kit's own source that an output folder must neither be, hold nor lie in.
SOURCE_FOLDERS = ("notebooks", "helpers", "presets", "tests", "scripts", "benchmarks", ".ci",
                  ".git")
#: Cells whose code report.html and report.pdf hide (their outputs stay): the set-up and
#: config-loading cells and the parameters, which say nothing about segmentation.
HIDDEN_INPUT_TAGS = ("setup", "parameters", "injected-parameters")
#: The kernel's own log: warnings only (it warns on every start that its local TCP sockets
#: are unencrypted, which says nothing about the run); errors in cells reach the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: Parameters that hold paths, shortened when they lie outside the kit.
PATH_PARAMETERS = ("data_root", "output_dir")
#: The results summary at the top of the report: tables/<name>.csv with a caption.
SUMMARY_TABLES = (
    ("04_comparison", "The two models at the epoch the test evaluation uses (Epochs: the "
                      "last one, or with validation: holdout the best on validation; report "
                      "A's comparison table)"),
    ("04_official_scores", "Official ISIC scorer on the test set, at each image's original "
                           "resolution (means over images)"),
    ("04_paired_dice", "Does fine-tuning help? Per-image official Dice, model 2 against model 1"),
)
SUMMARY_FIGURES = (
    ("04_six_panel", "Test images, true masks and both models' predictions"),
    ("04_train_loss", "Training loss per epoch"),
    ("04_val_loss", "Validation loss per epoch"),
)
#: Readable names for the summary tables' columns.
COLUMN_NAMES = {"threshold_jaccard": "threshold Jaccard", "images": "test images",
                "second_better": "model 2 better", "first_better": "model 1 better",
                "mean_difference": "mean Dice difference (2 - 1)", "ci95_low": "95% CI low",
                "ci95_high": "95% CI high", "wilcoxon_p": "Wilcoxon p",
                "paired_t_p": "paired t-test p"}


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
    os.environ[HEADLESS_VARIABLE] = "1"  # the kernel inherits it: no live widgets (plots)
    try:
        papermill.execute_notebook(str(source), str(target), cwd=str(REPO_ROOT),
                                   progress_bar=False, parameters=parameters,
                                   extra_arguments=KERNEL_ARGUMENTS)
    except papermill.PapermillExecutionError as error:
        raise NotebookFailed(f"{name}.ipynb failed in cell {error.cell_index} (execution count "
                             f"{error.exec_count}): {error.ename}: {error.evalue}. The executed "
                             f"notebook up to the error is {target}") from error
    finally:
        _relative_paths_in_metadata(target)
    return target


def _machine_folders(parameters: dict) -> list[tuple[str, str]]:
    """(a folder of this machine, how a report shows it), the longest first: the run's data
    and output folders, the kit, the folder beside it, the home folder."""
    folders = [(str(resolve_path(parameters[key]).resolve()), public_path(parameters[key]))
               for key in PATH_PARAMETERS if isinstance(parameters.get(key), str)]
    folders += [(str(REPO_ROOT), "."), (str(REPO_ROOT.parent), ".."), (str(Path.home()), "~")]
    folders = [(folder, shown) for folder, shown in folders
               if Path(folder).parent != Path(folder)]  # never the file system's root
    return sorted(folders, key=lambda folder: -len(folder[0]))


def _without_machine_folders(text: str, folders: list[tuple[str, str]]) -> str:
    """``text`` with each folder (where its name ends: not ``/work`` in ``/workspace``)
    replaced by how the report shows it."""
    for folder, shown in folders:
        ends = re.escape(folder) + r"(?![^\s/'\":,;)\]])"  # then a separator, or the end
        text = re.sub(ends, shown.replace("\\", "\\\\"), text)
    return text


def _relative_paths_in_metadata(path: Path) -> None:
    """papermill records the notebooks' absolute paths, the parameters may name folders
    outside the kit, and a cell's output may print a file's path (a warning naming an image):
    keep only the forms :func:`public_path` gives."""
    if not path.exists():
        return
    notebook = nbformat.read(path, as_version=4)
    recorded = notebook.metadata.get("papermill", {})
    folders = _machine_folders(recorded.get("parameters", {}))
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _without_machine_folders(output["text"], folders)
            if "traceback" in output:
                output["traceback"] = [_without_machine_folders(line, folders)
                                       for line in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = _without_machine_folders(output["evalue"], folders)
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/") and isinstance(value, str):
                    output["data"][kind] = _without_machine_folders(value, folders)
    for key in ("input_path", "output_path"):
        if recorded.get(key):
            recorded[key] = public_path(recorded[key])
    parameters = recorded.get("parameters", {})
    for key in PATH_PARAMETERS:
        if not isinstance(parameters.get(key), str):
            continue
        shown = public_path(parameters[key])
        for cell in notebook.cells:
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.source = cell.source.replace(
                    f"{key} = {PythonTranslator.translate_str(parameters[key])}",
                    f"{key} = {PythonTranslator.translate_str(shown)}")
        parameters[key] = shown
    write_text(path, nbformat.writes(notebook))


@dataclass(frozen=True)
class ReportInfo:
    """The title block: what was run, on what, when, and with which code."""

    title: str
    data: str
    date: str
    commit: str
    torch: str
    device: str


def kit_commit() -> str:
    """The kit's short git commit (``+ local changes`` when its code differs from it; the
    generated ``reports/`` do not count), or ``"unknown"`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=20).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)reports")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + local changes" if changed else commit


def report_info(config: RunConfig) -> ReportInfo:
    """The title block of ``config``'s run, made on this machine now."""
    import torch

    from helpers.device import resolve_device
    from helpers.kernels import describe_cpu_kernels

    splits = load_splits(config, progress=False)  # decoded by the notebooks: a cache hit
    device = str(resolve_device(config.device))
    if device == "cpu":  # what else decides the bits (the notebooks' kernels inherit the cap)
        device = f"cpu ({describe_cpu_kernels()})"
    counts = f"{len(splits.train)} training, {len(splits.val)} validation, " \
             f"{len(splits.test)} test images" if splits.validation == "holdout" else \
             f"{len(splits.train)} training, {len(splits.test)} test images"
    return ReportInfo(title=config.title,
                      data=f"{describe(splits, config.data_root)}: {counts} at "
                           f"{config.image_size}x{config.image_size}",
                      date=datetime.date.today().isoformat(), commit=kit_commit(),
                      torch=torch.__version__, device=device)


def _format_table(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table: 4 decimals, p-values in 2 significant digits."""
    formatters = {}
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            formatters[column] = ("{:.2g}" if str(column).endswith("_p") else "{:.4f}").format
    frame = frame.rename(columns=COLUMN_NAMES)
    formatters = {COLUMN_NAMES.get(k, k): v for k, v in formatters.items()}
    return frame.to_html(index=False, border=0, classes="summary", formatters=formatters,
                         na_rep="")


#: Summary figures above this size are embedded as JPEG (the 6-panel figure is mostly
#: photographs: a fifth of its PNG size), so report.html stays small enough to mail.
LARGE_FIGURE_BYTES = 200_000


def _lighter(png: bytes) -> tuple[str, bytes]:
    """(format, bytes) of a figure to embed: the PNG itself, or a JPEG when it is large."""
    if len(png) <= LARGE_FIGURE_BYTES:
        return "png", png
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    return "jpeg", buffer.getvalue()


def lighter_outputs(notebook: nbformat.NotebookNode) -> None:
    """Replace large inline PNG outputs (photographs, mostly) by JPEGs, in place."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png and len(png) * 3 // 4 > LARGE_FIGURE_BYTES:
                kind, data = _lighter(base64.b64decode(png))
                del output["data"]["image/png"]
                output["data"][f"image/{kind}"] = base64.b64encode(data).decode("ascii")


def _image(path: Path, alt: str) -> str:
    """An ``<img>`` with ``path``'s figure embedded, so report.html is one file."""
    kind, data = _lighter(path.read_bytes())
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/{kind};base64,{encoded}" alt="{html.escape(alt)}">'


def summary_html(out_dir: Path) -> str:
    """The results first: the comparison tables and figures the notebooks wrote."""
    parts = ['<section id="summary"><h1>Results summary</h1>']
    missing = []
    for name, caption in SUMMARY_TABLES:
        path = out_dir / "tables" / f"{name}.csv"
        if not path.exists():
            missing.append(f"tables/{name}.csv")
            continue
        frame = pd.read_csv(path)
        if frame.columns[0].startswith("Unnamed"):  # a table saved with its index
            frame = frame.rename(columns={frame.columns[0]: ""})
        parts.append(f'<figure class="table"><figcaption>{html.escape(caption)}</figcaption>'
                     f"{_format_table(frame)}</figure>")
    for name, caption in SUMMARY_FIGURES:
        path = out_dir / "figures" / f"{name}.png"
        if not path.exists():
            missing.append(f"figures/{name}.png")
            continue
        kind = "plot half" if name.endswith("_loss") else "plot"
        parts.append(f'<figure class="{kind}">{_image(path, caption)}'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if missing:
        parts.append(f'<p class="missing">Not written by this run: {", ".join(missing)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _drop_widgets(notebook: nbformat.NotebookNode) -> None:
    """Progress bars are live widgets: in a static report they are empty boxes."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]


def chapter_html(notebook: nbformat.NotebookNode, anchor: str) -> tuple[list[tuple], str]:
    """One notebook as a report chapter: the hidden inputs removed, heading ids prefixed with
    ``anchor`` (the four notebooks share headings). Returns the headings (level, id, text)
    and the body."""
    notebook = nbformat.from_dict(notebook)  # a copy
    _drop_widgets(notebook)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True,
                            exclude_output_prompt=True, anchor_link_text="")
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_input_tags=set(HIDDEN_INPUT_TAGS), enabled=True),
        enabled=True)
    body, _ = exporter.from_notebook_node(notebook)
    body = re.sub(r'\bid="([^"]+)"', rf'id="{anchor}-\1"', body)
    body = re.sub(r'href="#([^"]+)"', rf'href="#{anchor}-\1"', body)
    headings = [(int(level), hid, re.sub(r"<[^>]+>", "", text).strip())
                for level, hid, text in re.findall(r'<h([12]) id="([^"]+)"[^>]*>(.*?)</h\1>',
                                                   body, flags=re.S)]
    return headings, f'<section class="chapter" id="{anchor}">\n{body}\n</section>'


REPORT_CSS = """
@page { size: A4; margin: 18mm 16mm 18mm 16mm;
        @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt;
                         color: #666; } }
body { font-family: "DejaVu Sans", "Helvetica", "Arial", sans-serif; font-size: 10pt;
       line-height: 1.4; color: #111; max-width: 60em; margin: 2em auto; padding: 0 1em; }
@media print { body { max-width: none; margin: 0; padding: 0; } }
h1 { font-size: 17pt; margin: 1.2em 0 0.4em; border-bottom: 1px solid #bbb; }
h2 { font-size: 13pt; margin: 1em 0 0.3em; }
header.title { border-bottom: 2px solid #333; margin-bottom: 1em; }
header.title h1 { font-size: 22pt; border: none; margin: 0 0 0.3em; }
header.title dl { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em;
                  margin: 0 0 1em; }
header.title dt { font-weight: bold; } header.title dd { margin: 0; }
section.chapter { break-before: page; }
nav.toc ul { list-style: none; padding-left: 1.4em; } nav.toc li { margin: 0.1em 0; }
nav.toc > ul { padding-left: 0; }
nav.toc a { color: #124; text-decoration: none; }
figure { margin: 1em 0; break-inside: avoid; }
figure.half { display: inline-block; width: 48%; margin: 0.5em 0.5%; vertical-align: top; }
figure.plot img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: 9pt; color: #333; margin: 0.3em 0; font-style: italic; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 8pt; margin: 0.5em 0; break-inside: avoid; }
th, td { border-bottom: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
pre { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; line-height: 1.3;
      white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
.jp-InputArea pre, .highlight pre { background: #f6f6f6; border-left: 3px solid #9ab;
                                    padding: 4px 6px; }
.jp-OutputArea pre { padding: 2px 6px; }
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] pre { color: #777; }
.jp-Cell { margin: 0.4em 0; } .jp-OutputArea-output { overflow-x: auto; }
.missing { color: #a00; }
"""


def report_document(info: ReportInfo, summary: str, chapters: list[tuple[list, str]]) -> str:
    """The whole report as one HTML document: title block, summary, contents, chapters."""
    rows = [("Data", info.data), ("Date", info.date), ("Kit commit", info.commit),
            ("PyTorch", info.torch), ("Device", info.device)]
    block = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    toc = ['<li><a href="#summary">Results summary</a></li>']
    for headings, _ in chapters:
        items = [f'<li><a href="#{hid}">{html.escape(text)}</a>' for level, hid, text in headings
                 if level == 1]
        subs = [f'<li><a href="#{hid}">{html.escape(text)}</a></li>' for level, hid, text
                in headings if level == 2]
        toc.append("".join(items) + (f"<ul>{''.join(subs)}</ul>" if subs else "") + "</li>")
    style = REPORT_CSS + HtmlFormatter(style="default").get_style_defs(".highlight")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(info.title)}</title>", f"<style>{style}</style></head><body>",
        f'<header class="title"><h1>{html.escape(info.title)}</h1><dl>{block}</dl></header>',
        summary, f'<nav class="toc"><h1>Contents</h1><ul>{"".join(toc)}</ul></nav>',
        *(body for _, body in chapters), "</body></html>"])


def export_html(executed: list[Path], out_dir: Path, info: ReportInfo) -> Path:
    """One HTML file per notebook (``html/``) plus ``report.html``, the report to hand in."""
    exporter = HTMLExporter()
    html_dir = out_dir / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    chapters = []
    for path in executed:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook)
        write_text(html_dir / f"{path.stem}.html", body)
        lighter_outputs(notebook)
        chapters.append(chapter_html(notebook, f"ch{path.stem[:2]}"))
    report = out_dir / "report.html"
    write_text(report, report_document(info, summary_html(out_dir), chapters))
    return report


def export_pdf(report_html: Path) -> tuple[Path | None, str]:
    """``report.pdf`` beside ``report_html``, printed by WeasyPrint. Returns the PDF (or
    ``None`` when it was skipped) and a line saying what happened."""
    try:
        import weasyprint
    except (ImportError, OSError) as error:  # OSError: the pango library is missing
        return None, (f"report.pdf skipped: WeasyPrint cannot be loaded ({error}); "
                      "`pip install weasyprint` (it needs the pango library) to get it. "
                      "report.html is complete.")
    pdf = report_html.with_suffix(".pdf")
    with atomic_path(pdf) as tmp:
        weasyprint.HTML(string=report_html.read_text(encoding="utf-8")).write_pdf(tmp)
    first_page(pdf, pdf.with_name("report-page1.png"))
    return pdf, f"PDF: {display_path(pdf)}"


def first_page(pdf: Path, png: Path) -> Path:
    """The PDF's first page as a PNG (a preview for the README and for course pages)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=1.0).to_pil()
    finally:
        document.close()
    with atomic_path(png) as tmp:
        image.save(tmp, optimize=True)
    return png


#: The run folder each training notebook fills, for the console's per-epoch bar.
TRAINED_IN = {"02_frozen_encoder": "frozen", "03_fine_tuning": "fine_tuned"}


@contextmanager
def epoch_progress(config: RunConfig, notebook: str, interval: float = 1.0) -> Iterator[None]:
    """While a training notebook runs in its kernel, show its epochs in this console: a
    second bar that follows the run folder's ``history.csv``. Other notebooks: nothing."""
    if notebook not in TRAINED_IN:
        yield
        return
    name = TRAINED_IN[notebook]
    history = config.run_dir(name) / "history.csv"
    bar = tqdm(total=config.model(name).epochs, desc=f"  {name} epochs", unit="epoch",
               leave=False)
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(interval):
            try:
                done = max(0, len(history.read_text().splitlines()) - 1)
            except OSError:
                continue
            bar.update(min(done, bar.total) - bar.n)

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        bar.close()


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
        with epoch_progress(config, name):
            executed.append(execute(name, parameters, config.output_dir))
        tqdm.write(f"{name}: {time.perf_counter() - began:.0f} s")
    report = export_html(executed, config.output_dir, report_info(config))
    _, said = export_pdf(report)
    print(f"Done: {display_path(report)}\n{said}")
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
