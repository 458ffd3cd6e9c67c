"""The dashboard's charts: Bokeh figures built once, updated by replacing their sources' data.

Every chart is computed from a run's stored aggregates (`RunStatistics`), never from its
rows, except the patient timeline, which shows one patient. Reusing figures (rather than
building new ones per update) keeps a long session's memory flat and the browser's canvas
count fixed.

They speak as a clinic does: time in months since enrolment, shares of the cohort in per cent
where counts mislead, plain names ("Highly active", "Long treatment"), whole numbers with
thousands separators (never 4e+06), axis titles with units, a legend above the data, and a
hover tooltip on every chart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, LinearAxis, NumeralTickFormatter
from bokeh.plotting import figure

from engine.model.states import DISCONTINUATION_REASON_NAMES, STATE_NAMES
from engine.stats.run_stats import RunStatistics
from engine.totals import reason_names
from viz.document_lock import dispatched

__all__ = [
    "DAYS_PER_MONTH",
    "DiscontinuationChart",
    "DistributionChart",
    "InjectionsChart",
    "StatesChart",
    "VisionProgressionChart",
    "WorkloadChart",
    "base_figure",
    "hover",
    "legend_above",
    "plain_name",
]

STATE_COLOURS = ("#9e9e9e", "#4caf50", "#ff9800", "#e53935")
_HEIGHT = 280
DAYS_PER_MONTH = 365.25 / 12


def base_figure(title: str, x_label: str, y_label: str, **kwargs: Any) -> Any:
    """A dashboard figure: fixed height, full width, the usual tools, both axes titled,
    numbers in plain notation."""
    plot = figure(
        title=title,
        height=_HEIGHT,
        sizing_mode="stretch_width",
        toolbar_location="right",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        **kwargs,
    )
    plot.xaxis.axis_label = x_label
    plot.yaxis.axis_label = y_label
    for axis in (*plot.xaxis, *plot.yaxis):
        if isinstance(axis, LinearAxis):  # 4,000,000, not 4e+06
            axis.formatter = NumeralTickFormatter(format="0,0[.][0]")
    return plot


def plain_name(name: str) -> str:
    """A state or reason as a clinician writes it: "HIGHLY_ACTIVE" -> "Highly active"."""
    return name.replace("_", " ").capitalize()


def legend_above(plot: Any) -> None:
    """The legend in a row above the plot, never over the data; a click hides a series."""
    legend = plot.legend[0]
    legend.orientation = "horizontal"
    legend.click_policy = "hide"
    plot.add_layout(legend, "above")


def hover(plot: Any, tooltips: list[tuple[str, str]], **kwargs: Any) -> None:
    plot.add_tools(HoverTool(tooltips=tooltips, **kwargs))


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else float("nan") for v in values]


def _percent(counts: np.ndarray, total: int) -> list[float]:
    return (100 * counts / total).tolist() if total else [0.0] * len(counts)


class VisionProgressionChart:
    """Mean VA by month since enrolment, with 5-95 % and 25-75 % percentile bands."""

    def __init__(self) -> None:
        empty: dict[str, list[float]] = {
            k: [] for k in ("month", "mean", "p5", "p25", "p50", "p75", "p95", "count")
        }
        self.source = ColumnDataSource(empty)
        self.figure = base_figure(
            "Vision over time", "months since enrolment", "visual acuity (ETDRS letters)"
        )
        for low, high, alpha, label in (
            ("p5", "p95", 0.15, "5-95 % of patients"),
            ("p25", "p75", 0.3, "25-75 %"),
        ):
            self.figure.varea(
                "month",
                low,
                high,
                source=self.source,
                fill_alpha=alpha,
                fill_color="#1e88e5",
                legend_label=label,
            )
        mean = self.figure.line(
            "month", "mean", source=self.source, line_width=2, color="#0d47a1", legend_label="mean"
        )
        legend_above(self.figure)
        hover(
            self.figure,
            [
                ("month", "@month"),
                ("mean VA", "@mean{0.0} letters"),
                ("middle half", "@p25{0} to @p75{0} letters"),
                ("visits that month", "@count{0,0}"),
            ],
            renderers=[mean],
            mode="vline",
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        monthly = stats.monthly_vision()
        self.source.data = {
            "month": monthly.month,
            "mean": _finite(monthly.mean),
            "count": monthly.count,
            **{key: _finite(values) for key, values in monthly.quantiles.items()},
        }


class DistributionChart:
    """Patients per value of an exact histogram (final VA, VA change), with their share."""

    def __init__(self, title: str, x_label: str, name: str, offset: int = 0) -> None:
        self.name = name
        self.offset = offset
        self.source = ColumnDataSource({"value": [], "patients": [], "percent": []})
        self.figure = base_figure(title, x_label, "patients")
        self.figure.vbar("value", top="patients", width=0.9, source=self.source, color="#5e35b1")
        hover(
            self.figure,
            [("letters", "@value"), ("patients", "@patients{0,0}"), ("of all", "@percent{0.0} %")],
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        counts = stats.distribution(self.name)
        present = np.flatnonzero(counts)
        if present.size == 0:
            self.source.data = {"value": [], "patients": [], "percent": []}
            return
        lo, hi = int(present[0]), int(present[-1]) + 1
        shown = counts[lo:hi]
        self.source.data = {
            "value": list(range(lo + self.offset, hi + self.offset)),
            "patients": shown.tolist(),
            "percent": _percent(shown, int(counts.sum())),
        }


class InjectionsChart:
    """Injections per patient-year as a box plot: the middle half of patients in the box, the
    median across it, whiskers to the 5th and 95th percentiles (t-digest), the exact mean."""

    LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
    COLUMNS = ("p5", "p25", "p50", "p75", "p95")

    def __init__(self) -> None:
        self.source = ColumnDataSource({"row": [], **{c: [] for c in (*self.COLUMNS, "mean")}})
        self.figure = base_figure(
            "Injections per patient-year",
            "injections per patient-year",
            "",
            y_range=["all patients"],
        )
        plot, source = self.figure, self.source
        plot.yaxis.visible = False  # one box: the title says what it is
        plot.segment("p5", "row", "p95", "row", source=source, line_width=2, color="#004d40")
        box = plot.hbar(
            "row",
            left="p25",
            right="p75",
            height=0.5,
            source=source,
            color="#00897b",
            alpha=0.6,
            legend_label="middle half of patients",
        )
        plot.rect(
            "p50",
            "row",
            width=0.02,
            height=0.5,
            source=source,
            color="#004d40",
            width_units="data",
            legend_label="median",
        )
        plot.scatter(
            "mean",
            "row",
            source=source,
            marker="diamond",
            size=14,
            color="#d81b60",
            legend_label="mean",
        )
        legend_above(plot)
        hover(
            plot,
            [
                ("median", "@p50{0.0}"),
                ("middle half", "@p25{0.0} to @p75{0.0}"),
                ("5th to 95th percentile", "@p5{0.0} to @p95{0.0}"),
                ("mean", "@mean{0.00}"),
            ],
            renderers=[box],
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        values = _finite(stats.sketch_quantiles("injections_per_year", self.LEVELS))
        data: dict[str, list[Any]] = {"row": ["all patients"]}
        data.update({column: [value] for column, value in zip(self.COLUMNS, values, strict=True)})
        data["mean"] = _finite([stats.sketch_mean("injections_per_year")])
        self.source.data = data


class StatesChart:
    """Per cent of each month's visits in each disease state (stacked bars, one per month)."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"month": [], **{name: [] for name in STATE_NAMES}})
        self.figure = base_figure(
            "Disease activity over time",
            "months since enrolment",
            "% of that month's visits",
            y_range=(0, 100),
        )
        self.figure.vbar_stack(
            list(STATE_NAMES),
            x="month",
            width=0.9,
            source=self.source,
            color=list(STATE_COLOURS),
            legend_label=[plain_name(n) for n in STATE_NAMES],
        )
        legend_above(self.figure)
        hover(
            self.figure,
            [("month", "@month"), *((plain_name(n), f"@{n}{{0.0}} %") for n in STATE_NAMES)],
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        table = stats.states_by_month().astype(float)
        totals = table.sum(axis=1)
        rows = np.flatnonzero(totals)
        percent = 100 * table[rows] / totals[rows, None]
        self.source.data = {
            "month": rows.tolist(),
            **{name: percent[:, i].tolist() for i, name in enumerate(STATE_NAMES)},
        }


class DiscontinuationChart:
    """Per cent of the cohort whose treatment ended, by the reason that ended it."""

    def __init__(self) -> None:
        names = list(DISCONTINUATION_REASON_NAMES)
        labels = [plain_name(n) for n in names]
        zeros = [0] * len(names)
        self.source = ColumnDataSource(
            {"reason": names, "label": labels, "patients": zeros, "percent": [0.0] * len(names)}
        )
        self.figure = base_figure(
            "Treatment stopped, by reason", "% of all patients", "", y_range=labels
        )
        self.figure.hbar("label", right="percent", height=0.6, source=self.source, color="#f4511e")
        hover(
            self.figure,
            [("reason", "@label"), ("patients", "@patients{0,0}"), ("of all", "@percent{0.0} %")],
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        counts = stats.distribution("discontinuation_reason")
        try:  # the run's format's reasons (format 2 has more)
            names = reason_names(tuple(counts))
        except ValueError:
            names = DISCONTINUATION_REASON_NAMES
        padded = np.zeros(len(names), dtype=np.int64)
        padded[: len(counts)] = counts[: len(padded)]
        labels = [plain_name(n) for n in names]
        self.figure.y_range.factors = labels
        self.source.data = {
            "reason": list(names),
            "label": labels,
            "patients": padded.tolist(),
            "percent": _percent(padded, stats.totals().patients),
        }


class WorkloadChart:
    """Clinic workload per calendar month of the study: visits and injections."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {"month": [], "visits": [], "injections": [], "active_patients": []}
        )
        self.figure = base_figure(
            "Clinic workload", "month of the study", "visits or injections per month"
        )
        lines = [
            self.figure.line(
                "month", column, source=self.source, color=colour, line_width=2, legend_label=column
            )
            for column, colour in (("visits", "#3949ab"), ("injections", "#d81b60"))
        ]
        legend_above(self.figure)
        hover(
            self.figure,
            [
                ("month", "@month"),
                ("visits", "@visits{0,0}"),
                ("injections", "@injections{0,0}"),
                ("patients under treatment", "@active_patients{0,0}"),
            ],
            renderers=lines[:1],
            mode="vline",
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        workload = stats.workload()
        months = len(workload["visits"])
        self.source.data = {
            "month": list(range(months)),
            "visits": workload["visits"].tolist(),
            "injections": workload["injections"].tolist(),
            "active_patients": workload["active_patients"].tolist(),
        }
