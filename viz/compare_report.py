"""`amdsim report DIR` for a comparison: its Compare page as one self-contained HTML file.

BokehJS and the data are inlined (`INLINE` resources), as `viz.report` does for a run, so the
file opens offline and can be sent as is. A comparison that has not finished its arms has
nothing to report: `ParameterError` says its status and how to finish it.
"""

from __future__ import annotations

from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import Div
from bokeh.resources import INLINE

from engine.errors import ParameterError
from viz.compare_data import read_comparison
from viz.compare_page import compare_content
from viz.safe_text import html_text

__all__ = ["write_compare_report"]


def write_compare_report(directory: Path, out: Path) -> Path:
    """Write the report of the comparison at `directory` to `out` (atomically)."""
    comparison = read_comparison(directory)
    content = compare_content(comparison)
    figures = content.figures
    if figures is None:
        raise ParameterError(f"{directory} has no comparison.json yet: {comparison.status_text()}")
    title = f"amdsim comparison {comparison.document['run']['id']}"  # type: ignore[index]
    parts = [
        Div(
            text=f"<h1>{html_text(title)}</h1>{content.status}{content.header}{content.pairs}",
            sizing_mode="stretch_width",
            disable_math=True,  # a "$$" in a name or price is text, not TeX from a CDN
        ),
        row(figures.va_change, figures.injections, sizing_mode="stretch_width"),
        figures.workload,
        Div(text=content.arms, sizing_mode="stretch_width", disable_math=True),
    ]
    if content.psa:
        parts.append(Div(text=content.psa, sizing_mode="stretch_width", disable_math=True))
        plots = [f for f in (figures.ce_plane, figures.ceac) if f is not None]
        if plots:
            parts.append(row(*plots, sizing_mode="stretch_width"))
    document = file_html(column(*parts, sizing_mode="stretch_width"), INLINE, title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(out)
    return out
