"""The outcome table's counts (docs/model.md section 6), per shard, from format-2 patients columns.

Computed in the worker beside the other shard statistics and, like every `Counts` array,
merged by exact integer addition, so the run's table never depends on how its shards were
grouped, ordered, split or resumed. VA changes are whole letters, so count, sum and sum of
squares (int64) give the mean and M2 exactly: M2 = S2 - S1^2 / n, without the rounding of
floating-point moment merges. Read by `engine.stats.outcome_table`.
"""

from __future__ import annotations

import numpy as np

from engine.columns import NULL, V2_MONTHS, Columns

__all__ = [
    "FIELDS",
    "KINDS",
    "PERIODS",
    "PER_YEAR_ROWS",
    "YEAR_DAYS",
    "outcome_counts",
]

KINDS = ("locf", "observed")  # all patients (trial style); alive and under treatment (registry)
# Per milestone and kind: patients, sum and sum of squares of VA change from the measured
# baseline, patients gaining >= 15 letters, losing < 15 (change > -15), losing >= 15, >= 70.
FIELDS = ("n", "sum", "sum_sq", "gain_15", "lose_lt_15", "lose_15", "at_least_70")
PERIODS = ("y1", "y2", "later")  # days since enrolment t < 364, 364 <= t < 728, t >= 728
YEAR_DAYS = 364
PER_YEAR_ROWS = ("injections", "visits", "treated_days")


def outcome_counts(patients: Columns) -> dict[str, np.ndarray]:
    """The outcome-table counts of these patients (format-2 columns).

    - ``outcome_va`` (milestone, kind, field): see `FIELDS`; a patient counts at month m when
      ``va_m{m}`` is not null (follow-up reaches it), and as observed when also
      ``treated_m{m}``;
    - ``outcome_per_year`` (row, period): injections, visits and days alive under treatment
      (the patient-years denominator) in each period of `PERIODS`;
    - ``outcome_deaths``: deaths, and days alive from enrolment to death or the horizon.
    """
    baseline = patients["baseline_vision"].astype(np.int64)
    va_table = np.zeros((len(V2_MONTHS), len(KINDS), len(FIELDS)), dtype=np.int64)
    for i, month in enumerate(V2_MONTHS):
        va = patients[f"va_m{month}"].astype(np.int64)
        reached = va != NULL
        observed = reached & patients[f"treated_m{month}"]
        for j, chosen in enumerate((reached, observed)):
            value = va[chosen]
            change = value - baseline[chosen]
            va_table[i, j] = (
                len(value),
                change.sum(),
                (change * change).sum(),
                np.count_nonzero(change >= 15),
                np.count_nonzero(change > -15),
                np.count_nonzero(change <= -15),
                np.count_nonzero(value >= 70),
            )
    treated = patients["treated_days"].astype(np.int64)
    exposure = (
        np.minimum(treated, YEAR_DAYS),
        np.clip(treated - YEAR_DAYS, 0, YEAR_DAYS),
        np.maximum(treated - 2 * YEAR_DAYS, 0),
    )
    per_year = np.array(
        [
            [int(patients[f"{what}_{period}"].astype(np.int64).sum()) for period in PERIODS]
            for what in ("injections", "visits")
        ]
        + [[int(days.sum()) for days in exposure]],
        dtype=np.int64,
    )
    deaths = np.array(
        [
            np.count_nonzero(patients["death_day"] != NULL),
            int(patients["alive_days"].astype(np.int64).sum()),
        ],
        dtype=np.int64,
    )
    return {"outcome_va": va_table, "outcome_per_year": per_year, "outcome_deaths": deaths}
