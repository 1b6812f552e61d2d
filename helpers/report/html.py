"""The report as HTML: one export per notebook, and ``report.html``, the one page to hand in.

``report.html`` opens with the title block and the results (the tables and figures notebook
04 wrote), then the contents, then the four notebooks as chapters with the set-up and
parameter code hidden. Every figure is embedded, so the page is one self-contained file; large
ones (photographs, mostly) as JPEG, so that it stays small enough to mail. Its style sheet is
``report.css`` beside this module; WeasyPrint prints the same page as the PDF (``@page``).
:class:`ReportInfo` holds the title block's rows (:func:`helpers.report.make.report_info`
fills them on the machine that runs the notebooks).
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nbformat
import pandas as pd
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from PIL import Image
from pygments.formatters import HtmlFormatter

from helpers.system.atomic import write_text

#: Cells whose code report.html and report.pdf hide (their outputs stay): the set-up and
#: config-loading cells and the parameters, which say nothing about segmentation.
HIDDEN_INPUT_TAGS = ("setup", "parameters", "injected-parameters")
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
#: Summary figures above this size are embedded as JPEG (the 6-panel figure is mostly
#: photographs: a fifth of its PNG size), so report.html stays small enough to mail.
LARGE_FIGURE_BYTES = 200_000
#: The page's style sheet, for the screen and for WeasyPrint's A4 pages.
REPORT_CSS = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ReportInfo:
    """The title block's rows: what was run, on what, when, and with which code."""

    title: str
    data: str
    date: str
    commit: str
    torch: str
    device: str


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
        f"<title>{html.escape(info.title)}</title>", f"<style>\n{style}</style></head><body>",
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
