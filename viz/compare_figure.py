"""What every Compare chart shares: one colour per arm, a figure whose ticks never use
scientific notation, and a legend below the plot area so it never covers data.

See also: `viz.compare_charts` (the arms' charts), `viz.compare_psa_charts` (the PSA's).
"""

from __future__ import annotations

import math
from typing import Any

from bokeh.models import BasicTickFormatter, Legend, LegendItem

from viz.charts import base_figure

__all__ = ["COLOURS", "colour", "compare_figure", "legend_below", "number", "pair_label"]

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_HEIGHT = 320
_LEGEND_ROW = 24


def pair_label(pair: dict[str, Any]) -> str:
    """How a pair reads: the second arm minus the first."""
    return f"{pair['second']} minus {pair['first']}"


def colour(index: int) -> str:
    """The colour of the arm (or pair) at `index`."""
    return COLOURS[index % len(COLOURS)]


def number(value: object) -> float:
    """A JSON number as a float; None (not available) as NaN, which Bokeh leaves as a gap."""
    return float(value) if isinstance(value, int | float) else math.nan


def compare_figure(title: str, x_label: str, y_label: str, legend_rows: int, **kwargs: Any) -> Any:
    """A dashboard figure tall enough for a legend of `legend_rows` rows below it."""
    plot = base_figure(title, x_label, y_label, **kwargs)
    plot.height = _HEIGHT + _LEGEND_ROW * legend_rows
    plot.yaxis.formatter = BasicTickFormatter(use_scientific=False)
    if not isinstance(kwargs.get("x_range"), list):  # a categorical axis keeps its labels
        plot.xaxis.formatter = BasicTickFormatter(use_scientific=False)
    return plot


def legend_below(plot: Any, items: list[tuple[str, list[Any]]]) -> None:
    """A legend under the plot area (never over the data); a click hides an arm."""
    legend = Legend(
        items=[LegendItem(label=label, renderers=renderers) for label, renderers in items],
        orientation="vertical",
        click_policy="hide",
        location="top_left",
        label_text_font_size="12px",
    )
    plot.add_layout(legend, "below")
