"""Two or more finished runs side by side when they were not simulated together (unpaired):
the outcome figures of each, their differences from the first run with 95 % CIs, and overlaid
charts of vision and clinic workload.

Runs made separately share no patients, so a difference carries the chance variation of
both cohorts: means use Welch's interval and shares the Wald interval
(`engine.stats.unpaired`). The page says this beside the table, and points to `amdsim
compare` for paired results. Figures without a per-patient spread in the stored statistics
(injections per patient-year by year, deaths per 100 patient-years) are shown without a CI.
"""

from __future__ import annotations

import math
from typing import Any

from bokeh.models import ColumnDataSource

from engine.stats.outcome_table import OutcomeRow, OutcomeTable
from engine.stats.run_stats import RunStatistics
from engine.stats.unpaired import Difference, proportion_difference, welch_difference
from viz.charts import base_figure, hover, legend_above
from viz.safe_text import html_text

__all__ = ["UNPAIRED_NOTE", "unpaired_figures", "unpaired_table_html"]

MONTHS = (12, 24, 60)
COLOURS = ("#1e88e5", "#d81b60", "#43a047", "#fb8c00", "#8e24aa", "#00897b")
UNPAIRED_NOTE = (
    "Unpaired: these runs simulated different patients, so each difference carries the chance "
    "variation of both cohorts (Welch's interval for means, the Wald interval for shares); it "
    "is wider than a paired comparison. For paired differences, simulate the protocols "
    "together with <code>amdsim compare</code> (the comparisons above)."
)
_STYLE = (
    "<style>.unpaired th, .unpaired td {padding: 2px 10px; text-align: right;"
    " border-bottom: 1px solid #e0e0e0} .unpaired td:first-child, .unpaired th:first-child"
    " {text-align: left}</style>"
)

Run = tuple[str, RunStatistics]  # (label, statistics)


def _locf(table: OutcomeTable | None, month: int) -> OutcomeRow | None:
    if table is None:
        return None
    return next((r for r in table.rows if r.month == month and r.kind == "locf"), None)


def _ci(diff: Difference, scale: float = 1.0, unit: str = "") -> str:
    if math.isnan(diff.value):
        return "-"
    return f"{scale * diff.value:+.1f}{unit} ({scale * diff.low:+.1f} to {scale * diff.high:+.1f})"


def _measure_rows(runs: list[Run]) -> list[list[str]]:
    tables = [stats.outcome_table() for _, stats in runs]
    rows: list[list[str]] = []
    for month in MONTHS:
        cells = [_locf(t, month) for t in tables]
        if all(c is None or c.patients == 0 for c in cells):
            continue
        first = cells[0]
        mean_row = [f"Mean VA change at {month} months (letters)"]
        gain_row = [f"Gained &ge; 15 letters at {month} months"]
        for cell in cells:
            mean_row.append(
                "-" if cell is None else f"{cell.mean_change:.1f} (n={cell.patients:,})"
            )
            gain_row.append("-" if cell is None else f"{100 * cell.gain_15:.1f} %")
        for cell in cells[1:]:
            if first is None or cell is None:
                mean_row.append("-")
                gain_row.append("-")
                continue
            mean_row.append(
                _ci(
                    welch_difference(
                        first.mean_change,
                        first.sd,
                        first.patients,
                        cell.mean_change,
                        cell.sd,
                        cell.patients,
                    )
                )
            )
            gain_row.append(
                _ci(
                    proportion_difference(
                        first.gain_15, first.patients, cell.gain_15, cell.patients
                    ),
                    100,
                    " points",
                )
            )
        rows += [mean_row, gain_row]
    for period in ("year 1", "year 2"):
        row = [f"Injections per patient-year, {period}"]
        values = []
        for table in tables:
            year = next((y for y in table.years if y.period == period), None) if table else None
            values.append(math.nan if year is None else year.injections_per_year)
            row.append("-" if year is None else f"{year.injections_per_year:.2f}")
        row += [
            "-" if math.isnan(v) or math.isnan(values[0]) else f"{v - values[0]:+.2f} (no CI)"
            for v in values[1:]
        ]
        rows.append(row)
    stopped = [_stopped(stats) for _, stats in runs]
    row = ["Treatment stopped (% of patients)"]
    row += [f"{100 * share:.1f} %" for share, _ in stopped]
    row += [
        _ci(proportion_difference(stopped[0][0], stopped[0][1], share, n), 100, " points")
        for share, n in stopped[1:]
    ]
    rows.append(row)
    return rows


def _stopped(stats: RunStatistics) -> tuple[float, int]:
    totals = stats.totals()
    table = stats.outcome_table()
    stopped = sum(table.discontinuations.values()) if table else sum(totals.discontinued_by_reason)
    return (stopped / totals.patients if totals.patients else math.nan), totals.patients


def unpaired_table_html(runs: list[Run]) -> str:
    """The side-by-side table: a column per run, then each run's difference from the first."""
    labels = [html_text(label) for label, _ in runs]
    head = ["Measure", *labels, *(f"{label} &minus; {labels[0]} (95 % CI)" for label in labels[1:])]
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row in _measure_rows(runs)
    )
    return (
        f"{_STYLE}<p class='cmp-note unpaired-note'>{UNPAIRED_NOTE}</p>"
        f"<table class='unpaired'><tr>{header}</tr>{body}</table>"
    )


def unpaired_figures(runs: list[Run]) -> tuple[Any, Any]:
    """Mean VA by month (with each run's middle half of patients) and clinic visits per
    month, one colour per run."""
    vision = base_figure(
        "Vision over time", "months since enrolment", "visual acuity (ETDRS letters)"
    )
    workload = base_figure("Clinic workload", "month of the study", "visits per month")
    for (label, stats), colour in zip(runs, COLOURS * 10, strict=False):
        monthly = stats.monthly_vision()
        source = ColumnDataSource(
            {
                "month": monthly.month,
                "mean": monthly.mean,
                "p25": monthly.quantiles["p25"],
                "p75": monthly.quantiles["p75"],
                "run": [label] * len(monthly.month),
            }
        )
        vision.varea("month", "p25", "p75", source=source, fill_color=colour, fill_alpha=0.12)
        vision.line("month", "mean", source=source, color=colour, line_width=2, legend_label=label)
        visits = stats.workload()["visits"]
        workload.line(
            list(range(len(visits))),
            visits.tolist(),
            color=colour,
            line_width=2,
            legend_label=label,
        )
    hover(vision, [("run", "@run"), ("month", "@month"), ("mean VA", "@mean{0.0} letters")])
    hover(workload, [("month", "$x{0}"), ("visits", "$y{0,0}")])
    legend_above(vision)
    legend_above(workload)
    return vision, workload
