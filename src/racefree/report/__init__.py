"""SEE: drawing histories and findings, in the terminal (and later as HTML)."""

from __future__ import annotations

from racefree.report.terminal import Printer, lanes, summary_rows

__all__ = ["Printer", "lanes", "summary_rows"]
