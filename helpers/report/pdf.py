"""``report.pdf``: the report's page printed by WeasyPrint, and a preview of its first page.

WeasyPrint installs with pip but needs the pango library, which a machine may lack. Without
it the report is still complete as ``report.html``; the PDF is skipped and the run says why.
"""

from __future__ import annotations

from pathlib import Path

import pypdfium2
from PIL import ImageFile

from helpers.paths import display_path
from helpers.system.atomic import atomic_path

try:
    import weasyprint
except (ImportError, OSError) as error:  # OSError: the pango library is missing
    weasyprint = None
    #: Why WeasyPrint cannot print here; empty when it can.
    WEASYPRINT_PROBLEM = str(error)
else:
    WEASYPRINT_PROBLEM = ""
# Importing WeasyPrint tells PIL, for the whole process, to accept truncated images. The kit
# refuses them (docs/data.md: a cut-off mask must not load as a half-empty one), so the flag
# goes back to PIL's default.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def export_pdf(report_html: Path) -> tuple[Path | None, str]:
    """``report.pdf`` beside ``report_html``, printed by WeasyPrint. Returns the PDF (or
    ``None`` when it was skipped) and a line saying what happened."""
    if weasyprint is None:
        return None, (f"report.pdf skipped: WeasyPrint cannot be loaded ({WEASYPRINT_PROBLEM}); "
                      "`pip install weasyprint` (it needs the pango library) to get it. "
                      "report.html is complete.")
    pdf = report_html.with_suffix(".pdf")
    with atomic_path(pdf) as tmp:
        weasyprint.HTML(string=report_html.read_text(encoding="utf-8")).write_pdf(tmp)
    first_page(pdf, pdf.with_name("report-page1.png"))
    return pdf, f"PDF: {display_path(pdf)}"


def first_page(pdf: Path, png: Path) -> Path:
    """The PDF's first page as a PNG (a preview for the README and for course pages)."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=1.0).to_pil()
    finally:
        document.close()
    with atomic_path(png) as tmp:
        image.save(tmp, optimize=True)
    return png
