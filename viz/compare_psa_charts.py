"""The Compare page's PSA charts: the cost-effectiveness plane (one point per draw, the
willingness-to-pay thresholds as lines through the origin) and the acceptability curves
(the probability each arm is the most cost-effective against willingness to pay).

Does not cover: the PSA's numbers (`engine.psa.summary`), its SVG charts (`engine.psa.charts`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bokeh.models import (
    BasicTickFormatter,
    ColumnDataSource,
    HoverTool,
    NumeralTickFormatter,
    Range1d,
    Span,
)

from viz.compare_figure import colour, compare_figure, legend_below, number, pair_label

__all__ = ["ce_plane_figure", "ceac_figure"]


def _span(values: Sequence[float]) -> tuple[float, float]:
    """The range of `values` and 0, padded by a tenth (a flat range gets some width)."""
    finite = [v for v in values if math.isfinite(v)] + [0.0]
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.1 or max(abs(high), 1.0) * 0.1
    return low - pad, high + pad


def ce_plane_figure(document: dict[str, Any], draws: dict[str, list[float]]) -> Any | None:
    """Each PSA draw's incremental QALYs (x) and cost (y) per pair, the thresholds as lines.

    None when no pair has draws to show.
    """
    currency = document["valuation"].get("currency_symbol", "")
    pairs = []
    for pair in document.get("pairs", []):
        key = f"[{pair['second']} minus {pair['first']}]"
        costs = draws.get(f"incremental_cost{key}")
        qalys = draws.get(f"incremental_qalys{key}")
        if costs and qalys:
            pairs.append((pair, [number(c) for c in costs], [number(q) for q in qalys]))
    if not pairs:
        return None
    thresholds = document["valuation"].get("thresholds", [])
    all_q = [q for _, _, qs in pairs for q in qs]
    all_c = [c for _, cs, _ in pairs for c in cs]
    x_low, x_high = _span(all_q)
    y_low, y_high = _span(all_c)
    plot = compare_figure(
        "Cost-effectiveness plane (one point per PSA draw)",
        "incremental QALYs per patient",
        f"incremental cost per patient ({currency})",
        len(pairs) + len(thresholds),
        x_range=Range1d(x_low, x_high),
        y_range=Range1d(y_low, y_high),
    )
    plot.yaxis.formatter = NumeralTickFormatter(format="0,0")
    plot.xaxis.formatter = BasicTickFormatter(use_scientific=False, precision="auto")
    for dimension in ("width", "height"):
        plot.add_layout(Span(location=0, dimension=dimension, line_color="#333"))
    items = []
    for index, (pair, costs, qalys) in enumerate(pairs):
        label = pair_label(pair)
        source = ColumnDataSource(
            {
                "pair": [label] * len(costs),
                "draw": list(range(len(costs))),
                "cost": costs,
                "qalys": qalys,
            }
        )
        dots = plot.scatter(
            "qalys",
            "cost",
            source=source,
            size=7,
            alpha=0.6,
            color=colour(index),
            name=f"ce_plane:{label}",
        )
        items.append((label, [dots]))
        plot.add_tools(
            HoverTool(
                renderers=[dots],
                tooltips=[
                    ("pair", "@pair"),
                    ("draw", "@draw"),
                    ("incremental cost", f"{currency}@cost{{0,0}}"),
                    ("incremental QALYs", "@qalys{0.0000}"),
                ],
            )
        )
    reach = 10 * max(abs(x_low), abs(x_high))
    for index, threshold in enumerate(thresholds):
        line = plot.line(
            [-reach, reach],
            [-reach * threshold, reach * threshold],
            line_dash="dashed",
            color=("#555", "#999", "#bbb")[index % 3],
            line_width=1.5,
        )
        items.append((f"willingness to pay {currency}{threshold:,.0f} per QALY", [line]))
    legend_below(plot, items)
    return plot


def ceac_figure(document: dict[str, Any]) -> Any | None:
    """The probability each arm is the most cost-effective against willingness to pay."""
    acceptability = document.get("psa", {}).get("acceptability")
    if not acceptability or not acceptability.get("thresholds"):
        return None
    currency = document["valuation"].get("currency_symbol", "")
    names = acceptability["arms"]
    thresholds = [float(t) for t in acceptability["thresholds"]]
    plot = compare_figure(
        "Cost-effectiveness acceptability curves",
        f"willingness to pay per QALY ({currency})",
        "probability most cost-effective",
        len(names),
        y_range=Range1d(-0.02, 1.02),
    )
    plot.xaxis.formatter = NumeralTickFormatter(format="0,0")
    plot.yaxis.formatter = NumeralTickFormatter(format="0%")
    for threshold in document["valuation"].get("thresholds", []):
        plot.add_layout(
            Span(location=threshold, dimension="height", line_color="#999", line_dash="dashed")
        )
    items = []
    for index, name in enumerate(names):
        probabilities = [number(row[index]) for row in acceptability["probability_best"]]
        source = ColumnDataSource(
            {
                "arm": [name] * len(thresholds),
                "threshold": thresholds,
                "probability": probabilities,
            }
        )
        line = plot.line(
            "threshold",
            "probability",
            source=source,
            color=colour(index),
            line_width=2,
            name=f"ceac:{name}",
        )
        items.append((name, [line]))
        plot.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[
                    ("arm", "@arm"),
                    ("willingness to pay", f"{currency}@threshold{{0,0}} per QALY"),
                    ("probability best", "@probability{0%}"),
                ],
            )
        )
    legend_below(plot, items)
    return plot
