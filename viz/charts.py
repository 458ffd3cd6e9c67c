"""The dashboard's charts: Bokeh figures built once, updated by replacing their sources' data.

Every chart is computed from a run's stored aggregates (`RunStatistics`), never from its
rows, except the patient timeline, which shows one patient. Reusing figures (rather than
building new ones per update) keeps a long session's memory flat and the browser's canvas
count fixed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from engine.model.states import DISCONTINUATION_REASON_NAMES, STATE_NAMES
from engine.stats.run_stats import RunStatistics
from engine.totals import reason_names
from viz.document_lock import dispatched

__all__ = [
    "DiscontinuationChart",
    "DistributionChart",
    "InjectionsChart",
    "PatientTimelineChart",
    "StatesChart",
    "VisionProgressionChart",
    "WorkloadChart",
    "base_figure",
]

STATE_COLOURS = ("#9e9e9e", "#4caf50", "#ff9800", "#e53935")
_HEIGHT = 280


def base_figure(title: str, x_label: str, y_label: str, **kwargs: Any) -> Any:
    """A dashboard figure: fixed height, full width, the usual tools, both axes titled."""
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
    return plot


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else float("nan") for v in values]


class VisionProgressionChart:
    """Mean VA by month since enrollment, with 5-95 % and 25-75 % percentile bands."""

    def __init__(self) -> None:
        empty: dict[str, list[float]] = {
            k: [] for k in ("month", "mean", "p5", "p25", "p50", "p75", "p95", "count")
        }
        self.source = ColumnDataSource(empty)
        self.figure = base_figure(
            "Vision over time", "months since enrollment", "VA (ETDRS letters)"
        )
        self.figure.varea(
            "month",
            "p5",
            "p95",
            source=self.source,
            fill_alpha=0.15,
            fill_color="#1e88e5",
            legend_label="5-95 %",
        )
        self.figure.varea(
            "month",
            "p25",
            "p75",
            source=self.source,
            fill_alpha=0.3,
            fill_color="#1e88e5",
            legend_label="25-75 %",
        )
        self.figure.line(
            "month", "mean", source=self.source, line_width=2, color="#0d47a1", legend_label="mean"
        )
        self.figure.legend.location = "bottom_left"
        self.figure.add_tools(
            HoverTool(
                tooltips=[("month", "@month"), ("mean", "@mean{0.0}"), ("patients", "@count")]
            )
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
    """Counts per value of an exact histogram (final VA, VA change)."""

    def __init__(self, title: str, x_label: str, name: str, offset: int = 0) -> None:
        self.name = name
        self.offset = offset
        self.source = ColumnDataSource({"value": [], "patients": []})
        self.figure = base_figure(title, x_label, "patients")
        self.figure.vbar("value", top="patients", width=0.9, source=self.source, color="#5e35b1")

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        counts = stats.distribution(self.name)
        present = np.flatnonzero(counts)
        if present.size == 0:
            self.source.data = {"value": [], "patients": []}
            return
        lo, hi = int(present[0]), int(present[-1]) + 1
        self.source.data = {
            "value": list(range(lo + self.offset, hi + self.offset)),
            "patients": counts[lo:hi].tolist(),
        }


class InjectionsChart:
    """Injections per patient-year: quantiles from the t-digest, and the exact mean."""

    LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)

    def __init__(self) -> None:
        self.source = ColumnDataSource({"quantile": [], "injections_per_year": []})
        self.figure = base_figure(
            "Injections per patient-year",
            "quantile",
            "injections per year",
            x_range=[f"p{round(q * 100)}" for q in self.LEVELS] + ["mean"],
        )
        self.figure.vbar(
            "quantile", top="injections_per_year", width=0.7, source=self.source, color="#00897b"
        )

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        values = stats.sketch_quantiles("injections_per_year", self.LEVELS)
        values.append(stats.sketch_mean("injections_per_year"))
        labels = [f"p{round(q * 100)}" for q in self.LEVELS] + ["mean"]
        self.source.data = {"quantile": labels, "injections_per_year": _finite(values)}


class StatesChart:
    """Share of visits in each disease state by month since enrollment (stacked)."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"month": [], **{name: [] for name in STATE_NAMES}})
        self.figure = base_figure(
            "Disease state over time", "months since enrollment", "share of visits", y_range=(0, 1)
        )
        self.figure.varea_stack(
            list(STATE_NAMES),
            x="month",
            source=self.source,
            color=list(STATE_COLOURS),
            legend_label=list(STATE_NAMES),
        )
        self.figure.legend.location = "bottom_left"

    @dispatched
    def update(self, stats: RunStatistics) -> None:
        table = stats.states_by_month().astype(float)
        totals = table.sum(axis=1)
        rows = np.flatnonzero(totals)
        shares = table[rows] / totals[rows, None]
        self.source.data = {
            "month": rows.tolist(),
            **{name: shares[:, i].tolist() for i, name in enumerate(STATE_NAMES)},
        }


class DiscontinuationChart:
    """Patients discontinued, by the rule that ended their treatment."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {
                "reason": list(DISCONTINUATION_REASON_NAMES),
                "patients": [0] * len(DISCONTINUATION_REASON_NAMES),
            }
        )
        self.figure = base_figure(
            "Discontinuations by reason", "patients", "", y_range=list(DISCONTINUATION_REASON_NAMES)
        )
        self.figure.hbar(
            "reason", right="patients", height=0.6, source=self.source, color="#f4511e"
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
        self.figure.y_range.factors = list(names)
        self.source.data = {"reason": list(names), "patients": padded.tolist()}


class WorkloadChart:
    """Clinic workload per calendar month: visits and injections."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {"month": [], "visits": [], "injections": [], "active_patients": []}
        )
        self.figure = base_figure("Clinic workload", "calendar month of the study", "per month")
        self.figure.line(
            "month",
            "visits",
            source=self.source,
            color="#3949ab",
            line_width=2,
            legend_label="visits",
        )
        self.figure.line(
            "month",
            "injections",
            source=self.source,
            color="#d81b60",
            line_width=2,
            legend_label="injections",
        )
        self.figure.legend.location = "top_right"

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


class PatientTimelineChart:
    """One patient: VA at each visit, injections marked, and the interval to the next visit."""

    def __init__(self) -> None:
        self.visits = ColumnDataSource({"day": [], "vision": [], "interval_days": [], "state": []})
        self.injections = ColumnDataSource({"day": [], "vision": []})
        self.figure = base_figure("Patient timeline", "days since enrollment", "VA (letters)")
        self.figure.line(
            "day", "vision", source=self.visits, line_width=2, color="#1e88e5", legend_label="VA"
        )
        self.figure.scatter(
            "day",
            "vision",
            source=self.injections,
            marker="triangle",
            size=10,
            color="#d81b60",
            legend_label="injection",
        )
        self.figure.add_tools(
            HoverTool(
                tooltips=[
                    ("day", "@day"),
                    ("VA", "@vision"),
                    ("next interval", "@interval_days"),
                    ("state", "@state"),
                ]
            )
        )
        self.figure.legend.location = "bottom_left"

    @dispatched
    def update(self, visits: dict[str, list[Any]], enrollment_day: int) -> None:
        """`visits`: the patient's visit columns as lists (from a `PatientRecord`)."""
        days = [d - enrollment_day for d in visits["day"]]
        intervals = [-1 if v is None else v for v in visits["interval_days"]]
        self.visits.data = {
            "day": days,
            "vision": visits["vision"],
            "interval_days": intervals,
            "state": [str(s) for s in visits["disease_state"]],
        }
        injected = [i for i, flag in enumerate(visits["injected"]) if flag]
        self.injections.data = {
            "day": [days[i] for i in injected],
            "vision": [visits["vision"][i] for i in injected],
        }

    @dispatched
    def clear(self) -> None:
        self.visits.data = {"day": [], "vision": [], "interval_days": [], "state": []}
        self.injections.data = {"day": [], "vision": []}
