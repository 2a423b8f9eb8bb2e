"""`curator report`: the store's generations, per arm and round, as one self-contained HTML page.

    data = collect(store)              # the plain data model (collect.py)
    html = render(data)                # the page (html.py, charts in plots.py)
    write_report(store, "report.html") # both, to a file
    rows = summary_rows(data)          # one flat dict per arm and round (the demo's summary.json)
"""
from __future__ import annotations

from pathlib import Path

from curator.store import Store

from .collect import Arm, LineageRow, PplHistogram, ReportData, Round, collect, json_safe, summary_rows
from .html import main_figure, render

__all__ = ["Arm", "LineageRow", "PplHistogram", "ReportData", "Round", "collect", "json_safe", "main_figure", "render", "summary_rows",
           "write_report"]


def write_report(store: Store | str | Path, out: str | Path, *, loop: str | None = None,
                 as_of: int | str | None = None) -> ReportData:
    """Collect the store's report data, write the page to `out` (folders created) and return the data."""
    data = collect(store, loop=loop, as_of=as_of)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return data
