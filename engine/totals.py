"""Run totals: the exact headline counts and sums of a run, and the summary derived from them.

Totals come from the run's statistics (`engine.stats.run_stats.RunStatistics.totals`), whose
integer counts add up identically in any order; the summary is computed from them, never by
scanning rows again.
"""

from __future__ import annotations

import msgspec

from engine.columns import REASON_NAMES
from engine.model.parameters import DAYS_PER_YEAR
from engine.model.states import (
    DISCONTINUATION_REASON_NAMES,
    STATE_NAMES,
    VISIT_LAYOUT_REASON_NAMES,
)

__all__ = ["RunTotals", "SummaryStats", "reason_names"]


def reason_names(counts: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    """The reason names of counts per discontinuation reason.

    The reason lists differ in length, so the count says which: 3 in format 1, 9 for format-1
    runs of the current visit-based layout's rule blocks (`engine.stats.shard_stats` pads
    their counts to the full list), 7 in format 2.
    """
    for names in (*REASON_NAMES.values(), VISIT_LAYOUT_REASON_NAMES):
        if len(names) == len(counts):
            return names
    raise ValueError(f"no format has {len(counts)} discontinuation reasons")


class RunTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and sums over a set of patients (whole letters and days, so exact)."""

    patients: int = 0
    visits: int = 0
    injections: int = 0
    follow_up_days: int = 0
    baseline_vision_sum: int = 0
    final_vision_sum: int = 0
    discontinued_by_reason: tuple[int, ...] = (0,) * len(DISCONTINUATION_REASON_NAMES)
    final_state_counts: tuple[int, ...] = (0,) * len(STATE_NAMES)

    def summary(self) -> SummaryStats:
        """Rates and means derived from the totals."""
        n = max(self.patients, 1)
        patient_years = self.follow_up_days / DAYS_PER_YEAR
        discontinued = sum(self.discontinued_by_reason)
        return SummaryStats(
            patients=self.patients,
            visits=self.visits,
            injections=self.injections,
            patient_years=patient_years,
            injections_per_patient_year=self.injections / patient_years if patient_years else 0.0,
            visits_per_patient=self.visits / n,
            mean_baseline_vision=self.baseline_vision_sum / n,
            mean_final_vision=self.final_vision_sum / n,
            mean_vision_change=(self.final_vision_sum - self.baseline_vision_sum) / n,
            discontinued=discontinued,
            discontinuation_rate=discontinued / n,
            discontinuation_rate_by_reason={
                name: count / n
                for name, count in zip(
                    reason_names(self.discontinued_by_reason),
                    self.discontinued_by_reason,
                    strict=True,
                )
            },
            final_state_share={
                name: count / n
                for name, count in zip(STATE_NAMES, self.final_state_counts, strict=True)
            },
        )


class SummaryStats(msgspec.Struct, frozen=True, kw_only=True):
    """Headline outcomes of a run (rates are per patient unless the name says otherwise)."""

    patients: int
    visits: int
    injections: int
    patient_years: float
    injections_per_patient_year: float
    visits_per_patient: float
    mean_baseline_vision: float
    mean_final_vision: float
    mean_vision_change: float
    discontinued: int
    discontinuation_rate: float
    discontinuation_rate_by_reason: dict[str, float]
    final_state_share: dict[str, float]
