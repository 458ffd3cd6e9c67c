"""One patient's timeline on the Results page: VA at each visit by month since enrolment,
injections marked, and the interval to the next visit (from a `PatientRecord`'s visits)."""

from __future__ import annotations

from typing import Any

from bokeh.models import ColumnDataSource

from viz.charts import DAYS_PER_MONTH, base_figure, hover, legend_above, plain_name
from viz.document_lock import dispatched

__all__ = ["PatientTimelineChart"]


class PatientTimelineChart:
    """One patient: VA at each visit by month since enrolment, injections marked, and the
    interval to the next visit."""

    def __init__(self) -> None:
        self.visits = ColumnDataSource(
            {"month": [], "day": [], "vision": [], "interval_days": [], "state": []}
        )
        self.injections = ColumnDataSource({"month": [], "day": [], "vision": []})
        self.figure = base_figure(
            "Patient timeline", "months since enrolment", "visual acuity (ETDRS letters)"
        )
        line = self.figure.line(
            "month", "vision", source=self.visits, line_width=2, color="#1e88e5", legend_label="VA"
        )
        self.figure.scatter(
            "month",
            "vision",
            source=self.injections,
            marker="triangle",
            size=10,
            color="#d81b60",
            legend_label="injection",
        )
        legend_above(self.figure)
        hover(
            self.figure,
            [
                ("month", "@month{0.0} (day @day)"),
                ("VA", "@vision letters"),
                ("next visit in", "@interval_days days"),
                ("disease", "@state"),
            ],
            renderers=[line],
        )

    @dispatched
    def update(self, visits: dict[str, list[Any]], enrollment_day: int) -> None:
        """`visits`: the patient's visit columns as lists (from a `PatientRecord`)."""
        days = [d - enrollment_day for d in visits["day"]]
        months = [d / DAYS_PER_MONTH for d in days]
        intervals = [-1 if v is None else v for v in visits["interval_days"]]
        self.visits.data = {
            "month": months,
            "day": days,
            "vision": visits["vision"],
            "interval_days": intervals,
            "state": [plain_name(str(s)) for s in visits["disease_state"]],
        }
        injected = [i for i, flag in enumerate(visits["injected"]) if flag]
        self.injections.data = {
            "month": [months[i] for i in injected],
            "day": [days[i] for i in injected],
            "vision": [visits["vision"][i] for i in injected],
        }

    @dispatched
    def clear(self) -> None:
        self.visits.data = {k: [] for k in ("month", "day", "vision", "interval_days", "state")}
        self.injections.data = {"month": [], "day": [], "vision": []}
