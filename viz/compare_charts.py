"""The Compare page's charts: one Bokeh figure per question, one colour per arm.

Built from a comparison's `comparison.json` (and `psa/draws.parquet` for the CE plane):
mean VA change by month (LOCF, the trial convention, with its 95 % CI band), injections per
patient-year by period, clinic visits per week, and with a PSA the cost-effectiveness plane
and the acceptability curves. Legends sit below the plot area so they never cover data;
every axis is titled with its unit and ticks never use scientific notation.

Figures are built per comparison opened (the number of arms and pairs varies), each glyph
renderer named `<chart>:<arm or pair>` so tests can find an arm's data without pixels.

Does not cover: reading the directory (`viz.compare_data`), tables (`viz.compare_tables`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bokeh.models import (
    BasicTickFormatter,
    ColumnDataSource,
    HoverTool,
    Legend,
    LegendItem,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.transform import dodge

from viz.charts import base_figure

__all__ = ["ComparisonFigures", "comparison_figures", "pair_label"]

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_HEIGHT = 320
_LEGEND_ROW = 24
_AVERAGE_WEEKS = 4


def pair_label(pair: dict[str, Any]) -> str:
    """How a pair reads: the second arm minus the first."""
    return f"{pair['second']} minus {pair['first']}"


def _colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def _number(value: object) -> float:
    """A JSON number as a float; None (not available) as NaN, which Bokeh leaves as a gap."""
    return float(value) if isinstance(value, int | float) else math.nan


def _figure(title: str, x_label: str, y_label: str, legend_rows: int, **kwargs: Any) -> Any:
    plot = base_figure(title, x_label, y_label, **kwargs)
    plot.height = _HEIGHT + _LEGEND_ROW * legend_rows
    plot.yaxis.formatter = BasicTickFormatter(use_scientific=False)
    if not isinstance(kwargs.get("x_range"), list):  # a categorical axis keeps its labels
        plot.xaxis.formatter = BasicTickFormatter(use_scientific=False)
    return plot


def _legend_below(plot: Any, items: list[tuple[str, list[Any]]]) -> None:
    """A legend under the plot area (never over the data); a click hides an arm."""
    legend = Legend(
        items=[LegendItem(label=label, renderers=renderers) for label, renderers in items],
        orientation="vertical",
        click_policy="hide",
        location="top_left",
        label_text_font_size="12px",
    )
    plot.add_layout(legend, "below")


def va_change_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Mean VA change from baseline by month, per arm, with the 95 % CI as a band."""
    plot = _figure(
        "Mean change in visual acuity (LOCF, trial convention)",
        "months since enrolment",
        "mean change (ETDRS letters)",
        len(arms),
    )
    plot.add_layout(Span(location=0, dimension="width", line_color="#888", line_dash="dotted"))
    items = []
    for index, arm in enumerate(arms):
        rows = [r for r in arm["outcome_table"]["rows"] if r.get("kind") == "locf"]
        rows = [r for r in rows if r.get("mean_change") is not None]
        source = ColumnDataSource(
            {
                "arm": [arm["name"]] * len(rows),
                "month": [r["month"] for r in rows],
                "mean": [_number(r["mean_change"]) for r in rows],
                "low": [_number(r.get("ci_low")) for r in rows],
                "high": [_number(r.get("ci_high")) for r in rows],
                "patients": [r.get("patients", 0) for r in rows],
                "gain_15": [100 * _number(r.get("gain_15")) for r in rows],
                "lose_15": [100 * _number(r.get("lose_15")) for r in rows],
            }
        )
        colour = _colour(index)
        band = plot.varea("month", "low", "high", source=source, fill_color=colour, fill_alpha=0.18)
        line = plot.line(
            "month", "mean", source=source, color=colour, line_width=2, name=f"va:{arm['name']}"
        )
        dots = plot.scatter("month", "mean", source=source, color=colour, size=7)
        items.append((arm["name"], [band, line, dots]))
        plot.add_tools(
            HoverTool(
                renderers=[dots],
                tooltips=[
                    ("arm", "@arm"),
                    ("month", "@month"),
                    ("mean change", "@mean{+0.0} letters"),
                    ("95 % CI", "@low{+0.0} to @high{+0.0}"),
                    ("gained ≥ 15 letters", "@gain_15{0} %"),
                    ("lost ≥ 15 letters", "@lose_15{0} %"),
                    ("patients", "@patients{0,0}"),
                ],
            )
        )
    _legend_below(plot, items)
    return plot


def _periods(arm: dict[str, Any]) -> list[dict[str, Any]]:
    """The arm's periods of follow-up, without a sliver at the horizon's edge.

    A period with under 1 % of the largest period's patient-years (e.g. the few days of
    "later years" a 2-year horizon leaves) gives a rate from a handful of visits (180
    injections a year): it would dwarf the real bars, so it is not drawn.
    """
    years = arm["outcome_table"].get("years", [])
    most = max((_number(y.get("patient_years")) for y in years), default=0.0)
    return [y for y in years if _number(y.get("patient_years")) >= 0.01 * most]


def injections_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Injections per patient-year alive and under treatment, by period, one bar per arm."""
    periods: list[str] = []
    for arm in arms:
        for year in _periods(arm):
            if year["period"] not in periods:
                periods.append(year["period"])
    plot = _figure(
        "Injections per patient-year under treatment",
        "period of follow-up",
        "injections per patient-year",
        len(arms),
        x_range=periods,
    )
    plot.y_range.start = 0
    width = 0.8 / max(1, len(arms))
    items = []
    for index, arm in enumerate(arms):
        years = {y["period"]: y for y in _periods(arm)}
        shown = [p for p in periods if p in years]
        source = ColumnDataSource(
            {
                "arm": [arm["name"]] * len(shown),
                "period": shown,
                "injections": [_number(years[p]["injections_per_year"]) for p in shown],
                "visits": [_number(years[p]["visits_per_year"]) for p in shown],
                "patient_years": [_number(years[p].get("patient_years")) for p in shown],
            }
        )
        offset = -0.4 + width * (index + 0.5)
        bars = plot.vbar(
            x=dodge("period", offset, range=plot.x_range),
            top="injections",
            width=width * 0.9,
            source=source,
            color=_colour(index),
            name=f"injections:{arm['name']}",
        )
        items.append((arm["name"], [bars]))
    plot.add_tools(
        HoverTool(
            tooltips=[
                ("arm", "@arm"),
                ("period", "@period"),
                ("injections per patient-year", "@injections{0.00}"),
                ("visits per patient-year", "@visits{0.00}"),
                ("patient-years", "@patient_years{0,0}"),
            ]
        )
    )
    _legend_below(plot, items)
    return plot


def workload_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Clinic visits per week of the study (all visit types), one colour per arm.

    A cohort enrolled together comes back in waves, so each week is drawn faintly and the
    mean of the last four weeks boldly: the load a clinic plans for.
    """
    plot = _figure(
        f"Clinic workload (faint: each week; bold: mean of the last {_AVERAGE_WEEKS} weeks)",
        "week of the study",
        "clinic visits per week",
        len(arms),
    )
    plot.yaxis.formatter = NumeralTickFormatter(format="0,0")
    items = []
    for index, arm in enumerate(arms):
        weekly = arm["workload"]["weekly_visits"]
        loading = weekly.get("loading_injection", [])
        injection = weekly.get("injection", [])
        monitoring = weekly.get("monitoring", [])
        weeks = max(len(loading), len(injection), len(monitoring))

        def at(values: list[float], i: int) -> float:
            return float(values[i]) if i < len(values) else 0.0

        visits = [at(loading, i) + at(injection, i) + at(monitoring, i) for i in range(weeks)]
        source = ColumnDataSource(
            {
                "arm": [arm["name"]] * weeks,
                "week": list(range(1, weeks + 1)),
                "visits": visits,
                "average": _trailing_mean(visits, _AVERAGE_WEEKS),
                "injections": [at(loading, i) + at(injection, i) for i in range(weeks)],
                "monitoring": [at(monitoring, i) for i in range(weeks)],
            }
        )
        colour = _colour(index)
        weekly_line = plot.line(
            "week", "visits", source=source, color=colour, line_width=1, alpha=0.35
        )
        line = plot.line(
            "week",
            "average",
            source=source,
            color=colour,
            line_width=2.5,
            name=f"workload:{arm['name']}",
        )
        items.append((arm["name"], [line, weekly_line]))
        plot.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[
                    ("arm", "@arm"),
                    ("week", "@week"),
                    (f"mean of the last {_AVERAGE_WEEKS} weeks", "@average{0,0}"),
                    ("visits this week", "@visits{0,0}"),
                    ("of which injection visits", "@injections{0,0}"),
                    ("monitoring visits", "@monitoring{0,0}"),
                ],
            )
        )
    _legend_below(plot, items)
    return plot


def _trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the `window - 1` before it (fewer at the start)."""
    means, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        means.append(total / min(i + 1, window))
    return means


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
            pairs.append((pair, [_number(c) for c in costs], [_number(q) for q in qalys]))
    if not pairs:
        return None
    thresholds = document["valuation"].get("thresholds", [])
    all_q = [q for _, _, qs in pairs for q in qs]
    all_c = [c for _, cs, _ in pairs for c in cs]
    x_low, x_high = _span(all_q)
    y_low, y_high = _span(all_c)
    plot = _figure(
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
            color=_colour(index),
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
    _legend_below(plot, items)
    return plot


def ceac_figure(document: dict[str, Any]) -> Any | None:
    """The probability each arm is the most cost-effective against willingness to pay."""
    acceptability = document.get("psa", {}).get("acceptability")
    if not acceptability or not acceptability.get("thresholds"):
        return None
    currency = document["valuation"].get("currency_symbol", "")
    names = acceptability["arms"]
    thresholds = [float(t) for t in acceptability["thresholds"]]
    plot = _figure(
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
        probabilities = [_number(row[index]) for row in acceptability["probability_best"]]
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
            color=_colour(index),
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
    _legend_below(plot, items)
    return plot


@dataclass
class ComparisonFigures:
    """The figures of one comparison; `ce_plane` and `ceac` are None without a PSA."""

    va_change: Any
    injections: Any
    workload: Any
    ce_plane: Any | None = None
    ceac: Any | None = None

    @property
    def all(self) -> list[Any]:
        found = [self.va_change, self.injections, self.workload, self.ce_plane, self.ceac]
        return [f for f in found if f is not None]


def comparison_figures(
    document: dict[str, Any], draws: dict[str, list[float]]
) -> ComparisonFigures:
    """Every chart of a finished comparison (`document` is its comparison.json)."""
    arms = document["arms"]
    figures = ComparisonFigures(
        va_change=va_change_figure(arms),
        injections=injections_figure(arms),
        workload=workload_figure(arms),
    )
    if "psa" in document:
        figures.ce_plane = ce_plane_figure(document, draws)
        figures.ceac = ceac_figure(document)
    return figures
