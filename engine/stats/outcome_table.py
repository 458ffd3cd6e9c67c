"""The outcome table of a run (docs/model.md section 6), from its merged statistics, and as text.

At months 3, 6, 12, 24, 36 and 60, twice (LOCF over every patient whose follow-up reaches the
month, discontinued and dead included; observed among those alive and under treatment): mean
VA change from the measured baseline with its normal 95 % CI (1.96 x SD / sqrt(n)) and SD,
shares gaining >= 15, losing < 15 and losing >= 15 letters, share >= 70 letters. Then
injections and visits per patient-year under treatment in year 1, year 2 and later years,
discontinuations by reason, deaths per 100 patient-years.

`outcome_table` returns None for a run without these counts (format 1, the visit-based
model): readers then show `NOT_AVAILABLE`. `amdsim show`, the report and the Results page all
render the same `OutcomeTable`.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from engine.columns import REASON_NAMES, V2_MONTHS
from engine.model.parameters import DAYS_PER_YEAR
from engine.stats.outcome_counts import FIELDS, KINDS, PERIODS
from engine.stats.shard_stats import Counts

__all__ = [
    "NOT_AVAILABLE",
    "OutcomeRow",
    "OutcomeTable",
    "YearRow",
    "outcome_lines",
    "outcome_table",
]

NOT_AVAILABLE = "not available (needs a format-2 run of the time-based model)"
Z_95 = 1.96
MIN_PERIOD_DAYS = 28  # per patient: a period shorter than this on average gets no yearly rate
PERIOD_LABELS = {"y1": "year 1", "y2": "year 2", "later": "later years"}


class OutcomeRow(msgspec.Struct, frozen=True, kw_only=True):
    """VA outcomes at one month, LOCF or observed; NaN where no patient counts."""

    month: int
    kind: str  # "locf" | "observed"
    patients: int
    mean_change: float
    sd: float
    ci_low: float
    ci_high: float
    gain_15: float  # shares of `patients`, 0..1
    lose_lt_15: float
    lose_15: float
    at_least_70: float


class YearRow(msgspec.Struct, frozen=True, kw_only=True):
    """Injections and visits per patient-year alive and under treatment, in one period."""

    period: str  # "year 1" | "year 2" | "later years"
    patient_years: float
    injections_per_year: float
    visits_per_year: float


class OutcomeTable(msgspec.Struct, frozen=True, kw_only=True):
    """The whole outcome table of a run."""

    rows: list[OutcomeRow]
    years: list[YearRow]
    discontinuations: dict[str, int]
    patients: int
    deaths: int
    patient_years: float  # alive, from enrolment to death or the horizon
    deaths_per_100_patient_years: float


def outcome_table(counts: Counts) -> OutcomeTable | None:
    """The table from a run's merged counts; None when the run has no outcome counts."""
    arrays = counts.arrays
    if "outcome_va" not in arrays:
        return None
    va = arrays["outcome_va"]
    rows = [
        _row(month, kind, va[i, j])
        for i, month in enumerate(V2_MONTHS)
        for j, kind in enumerate(KINDS)
    ]
    per_year = arrays["outcome_per_year"]
    patients = int(arrays["totals"][0]) if "totals" in arrays else 0
    years = []
    for k, period in enumerate(PERIODS):
        patient_years = float(per_year[2, k]) / DAYS_PER_YEAR
        # A period the horizon cuts to a few days (a 2-year run's "later years" are days 728
        # to 730) would turn the week-104 visit into ~180 injections a year: no rate.
        short = per_year[2, k] < MIN_PERIOD_DAYS * patients
        years.append(
            YearRow(
                period=PERIOD_LABELS[period],
                patient_years=patient_years,
                injections_per_year=math.nan
                if short
                else _ratio(float(per_year[0, k]), patient_years),
                visits_per_year=math.nan if short else _ratio(float(per_year[1, k]), patient_years),
            )
        )
    deaths, alive_days = (int(v) for v in arrays["outcome_deaths"])
    alive_years = alive_days / DAYS_PER_YEAR
    reasons = arrays.get("discontinuation_reason", np.zeros(0, dtype=np.int64))
    names = REASON_NAMES[2]
    return OutcomeTable(
        rows=rows,
        years=years,
        discontinuations={
            name: int(reasons[i]) if i < len(reasons) else 0 for i, name in enumerate(names)
        },
        patients=patients,
        deaths=deaths,
        patient_years=alive_years,
        deaths_per_100_patient_years=_ratio(100.0 * deaths, alive_years),
    )


def outcome_lines(table: OutcomeTable | None) -> list[str]:
    """The table as aligned plain-text lines (the CLI prints them; the report embeds them)."""
    if table is None:
        return [f"Outcome table: {NOT_AVAILABLE}"]
    lines = [
        "Outcome table (VA change from the measured baseline, letters; shares of patients)",
        f"{'month':>5} {'':8} {'n':>8} {'mean':>6} {'95% CI':>15} {'SD':>5} "
        f"{'>=+15':>6} {'>-15':>6} {'<=-15':>6} {'>=70':>6}",
    ]
    for row in table.rows:
        ci = f"{row.ci_low:.1f} to {row.ci_high:.1f}" if row.patients > 1 else "-"
        lines.append(
            f"{row.month:>5} {row.kind:8} {row.patients:>8,} {_num(row.mean_change):>6} "
            f"{ci:>15} {_num(row.sd):>5} {_pct(row.gain_15):>6} {_pct(row.lose_lt_15):>6} "
            f"{_pct(row.lose_15):>6} {_pct(row.at_least_70):>6}"
        )
    lines.append("Per patient-year alive and under treatment:")
    for year in table.years:
        lines.append(
            f"  {year.period:11} injections {_num(year.injections_per_year, 2):>6}  "
            f"visits {_num(year.visits_per_year, 2):>6}  ({year.patient_years:,.0f} patient-years)"
        )
    stopped = ", ".join(f"{name} {count:,}" for name, count in table.discontinuations.items())
    lines.append(f"Discontinuations: {stopped}")
    lines.append(
        f"Deaths: {table.deaths:,} ({_num(table.deaths_per_100_patient_years, 2)} per 100 "
        f"patient-years over {table.patient_years:,.0f})"
    )
    return lines


def _row(month: int, kind: str, values: np.ndarray) -> OutcomeRow:
    fields = dict(zip(FIELDS, (int(v) for v in values), strict=True))
    n = fields["n"]
    total, squares = fields["sum"], fields["sum_sq"]
    mean = total / n if n else math.nan
    # M2 = S2 - S1^2 / n, from exact integers (n * S2 - S1^2 is exact in Python ints).
    sd = math.sqrt((n * squares - total * total) / n / (n - 1)) if n > 1 else math.nan
    half = Z_95 * sd / math.sqrt(n) if n > 1 else math.nan
    return OutcomeRow(
        month=month,
        kind=kind,
        patients=n,
        mean_change=mean,
        sd=sd,
        ci_low=mean - half,
        ci_high=mean + half,
        gain_15=_ratio(fields["gain_15"], n),
        lose_lt_15=_ratio(fields["lose_lt_15"], n),
        lose_15=_ratio(fields["lose_15"], n),
        at_least_70=_ratio(fields["at_least_70"], n),
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _num(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _pct(share: float) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.0f}%"
