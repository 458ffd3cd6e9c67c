"""The Compare page's charts: one Bokeh figure per question, one colour per arm.

Built from a comparison's `comparison.json` (and `psa/draws.parquet` for the CE plane):
mean VA change by month (LOCF, the trial convention, with its 95 % CI band), injections per
patient-year by period, clinic visits per week, and with a PSA the cost-effectiveness plane
and the acceptability curves (drawn by `viz.compare_psa_charts`). Legends sit below the plot area so they never cover data;
every axis is titled with its unit and ticks never use scientific notation.

Figures are built per comparison opened (the number of arms and pairs varies), each glyph
renderer named `<chart>:<arm or pair>` so tests can find an arm's data without pixels.

Does not cover: reading the directory (`viz.compare_data`), tables (`viz.compare_tables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Span
from bokeh.transform import dodge

from viz.compare_figure import colour, compare_figure, legend_below, number
from viz.compare_psa_charts import ce_plane_figure, ceac_figure

__all__ = ["ComparisonFigures", "comparison_figures"]

_AVERAGE_WEEKS = 4


def va_change_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Mean VA change from baseline by month, per arm, with the 95 % CI as a band."""
    plot = compare_figure(
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
                "mean": [number(r["mean_change"]) for r in rows],
                "low": [number(r.get("ci_low")) for r in rows],
                "high": [number(r.get("ci_high")) for r in rows],
                "patients": [r.get("patients", 0) for r in rows],
                "gain_15": [100 * number(r.get("gain_15")) for r in rows],
                "lose_15": [100 * number(r.get("lose_15")) for r in rows],
            }
        )
        tint = colour(index)
        band = plot.varea("month", "low", "high", source=source, fill_color=tint, fill_alpha=0.18)
        line = plot.line(
            "month", "mean", source=source, color=tint, line_width=2, name=f"va:{arm['name']}"
        )
        dots = plot.scatter("month", "mean", source=source, color=tint, size=7)
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
    legend_below(plot, items)
    return plot


def _periods(arm: dict[str, Any]) -> list[dict[str, Any]]:
    """The arm's periods of follow-up, without a sliver at the horizon's edge.

    A period with under 1 % of the largest period's patient-years (e.g. the few days of
    "later years" a 2-year horizon leaves) gives a rate from a handful of visits (180
    injections a year): it would dwarf the real bars, so it is not drawn.
    """
    years = arm["outcome_table"].get("years", [])
    most = max((number(y.get("patient_years")) for y in years), default=0.0)
    return [y for y in years if number(y.get("patient_years")) >= 0.01 * most]


def injections_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Injections per patient-year alive and under treatment, by period, one bar per arm."""
    periods: list[str] = []
    for arm in arms:
        for year in _periods(arm):
            if year["period"] not in periods:
                periods.append(year["period"])
    plot = compare_figure(
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
                "injections": [number(years[p]["injections_per_year"]) for p in shown],
                "visits": [number(years[p]["visits_per_year"]) for p in shown],
                "patient_years": [number(years[p].get("patient_years")) for p in shown],
            }
        )
        offset = -0.4 + width * (index + 0.5)
        bars = plot.vbar(
            x=dodge("period", offset, range=plot.x_range),
            top="injections",
            width=width * 0.9,
            source=source,
            color=colour(index),
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
    legend_below(plot, items)
    return plot


def workload_figure(arms: Sequence[dict[str, Any]]) -> Any:
    """Clinic visits per week of the study (all visit types), one colour per arm.

    A cohort enrolled together comes back in waves, so each week is drawn faintly and the
    mean of the last four weeks boldly: the load a clinic plans for.
    """
    plot = compare_figure(
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
        tint = colour(index)
        weekly_line = plot.line(
            "week", "visits", source=source, color=tint, line_width=1, alpha=0.35
        )
        line = plot.line(
            "week",
            "average",
            source=source,
            color=tint,
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
    legend_below(plot, items)
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
