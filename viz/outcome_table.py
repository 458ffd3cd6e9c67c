"""The outcome table (docs/model.md 6) as HTML, for the Results page and `amdsim report`.

Rendered from `engine.stats.outcome_table.OutcomeTable`, the same table `amdsim show` prints;
a format-1 run (the visit-based model) shows `NOT_AVAILABLE`.
"""

from __future__ import annotations

import math

from engine.stats.outcome_table import NOT_AVAILABLE, OutcomeTable
from viz.safe_text import html_text

__all__ = ["outcome_table_html"]

_HEADERS = (
    "Month",
    "View",
    "Patients",
    "Mean change (letters)",
    "95 % CI",
    "SD",
    "Gained &ge; 15 letters",
    "Lost &lt; 15 letters",
    "Lost &ge; 15 letters",
    "&ge; 70 letters (driving vision)",
)
# How a clinician names the two ways of counting (DESIGN 4b): trials report every randomised
# patient with the last observation carried forward; registries report those still seen.
_VIEWS = {"locf": "Trial view (LOCF, all patients)", "observed": "Registry view (observed)"}


_STYLE = (
    "<style>.outcome-table, .outcome-years {border-collapse: collapse}"
    " .outcome-table th, .outcome-table td, .outcome-years th, .outcome-years td"
    " {padding: 2px 10px; text-align: right; border-bottom: 1px solid #e0e0e0}"
    " .outcome-table td:nth-child(2) {text-align: left}</style>"
)


def outcome_table_html(table: OutcomeTable | None) -> str:
    """The table as an HTML fragment (headings, one row per month and kind)."""
    title = f"{_STYLE}<h3>Outcome table</h3>"
    if table is None:
        return f"{title}<p class='outcome-table-missing'>{html_text(NOT_AVAILABLE)}</p>"
    head = "".join(f"<th>{h}</th>" for h in _HEADERS)
    body = []
    for row in table.rows:
        kind = _VIEWS.get(row.kind, row.kind)
        ci = f"{_n(row.ci_low)} to {_n(row.ci_high)}" if row.patients > 1 else "-"
        cells = (
            str(row.month),
            kind,
            f"{row.patients:,}",
            _n(row.mean_change),
            ci,
            _n(row.sd),
            _p(row.gain_15),
            _p(row.lose_lt_15),
            _p(row.lose_15),
            _p(row.at_least_70),
        )
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    years = "".join(
        f"<tr><td>{html_text(y.period)}</td><td>{_n(y.injections_per_year, 2)}</td>"
        f"<td>{_n(y.visits_per_year, 2)}</td><td>{y.patient_years:,.0f}</td></tr>"
        for y in table.years
    )
    stopped = ", ".join(
        f"{html_text(name.replace('_', ' '))} {count:,}"
        for name, count in table.discontinuations.items()
    )
    return (
        f"{title}<p>Change in vision (ETDRS letters) from the measured baseline, and shares of "
        "patients. Trial view: every patient whose follow-up reaches the month, the last "
        "observation carried forward (LOCF), as trials such as VIEW report. Registry view: "
        "only patients alive and still seen at that month, as real-world cohorts report.</p>"
        f"<table class='outcome-table'><tr>{head}</tr>{''.join(body)}</table>"
        "<p>Per patient-year alive and under treatment:</p>"
        "<table class='outcome-years'><tr><th>Period</th><th>Injections</th><th>Visits</th>"
        f"<th>Patient-years</th></tr>{years}</table>"
        f"<p>Discontinuations: {stopped}. Deaths: {table.deaths:,} "
        f"({_n(table.deaths_per_100_patient_years, 2)} per 100 patient-years).</p>"
    )


def _n(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _p(share: float) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.0f} %"
