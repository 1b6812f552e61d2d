"""The report: run a preset's notebooks with papermill and export them as one HTML page and
a PDF (``python -m helpers.report``)."""

from helpers.report.make import main, make_report

__all__ = ["main", "make_report"]
