"""Run totals: exact, mergeable counts and sums per shard, and the summary derived from them.

Everything is an integer (vision is whole letters, time whole days), so merging shard totals
in any order gives bit-identical results. The summary of a run is computed from these, never
by scanning its rows again.
"""

from __future__ import annotations

import msgspec
import numpy as np

from engine.columns import ShardOutput
from engine.parameters import DAYS_PER_YEAR
from engine.states import DISCONTINUATION_REASON_NAMES, STATE_NAMES

__all__ = ["RunTotals", "SummaryStats"]


class RunTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and sums over a set of patients; `merge` is associative and commutative."""

    patients: int = 0
    visits: int = 0
    injections: int = 0
    follow_up_days: int = 0
    baseline_vision_sum: int = 0
    final_vision_sum: int = 0
    discontinued_by_reason: tuple[int, ...] = (0,) * len(DISCONTINUATION_REASON_NAMES)
    final_state_counts: tuple[int, ...] = (0,) * len(STATE_NAMES)

    @classmethod
    def of_shard(cls, output: ShardOutput, horizon_days: int) -> RunTotals:
        """Totals of one shard's patients; follow-up ends at discontinuation or the horizon."""
        p = output.patients
        reason = p["discontinuation_reason"]
        end_day = np.where(p["discontinued"], p["discontinuation_day"], horizon_days)
        return cls(
            patients=len(p["patient_id"]),
            visits=int(p["visits"].sum(dtype=np.int64)),
            injections=int(p["injections"].sum(dtype=np.int64)),
            follow_up_days=int((end_day - p["enrollment_day"]).sum(dtype=np.int64)),
            baseline_vision_sum=int(p["baseline_vision"].sum(dtype=np.int64)),
            final_vision_sum=int(p["final_vision"].sum(dtype=np.int64)),
            discontinued_by_reason=tuple(
                int(c)
                for c in np.bincount(
                    reason[reason >= 0], minlength=len(DISCONTINUATION_REASON_NAMES)
                )
            ),
            final_state_counts=tuple(
                int(c) for c in np.bincount(p["final_state"], minlength=len(STATE_NAMES))
            ),
        )

    def merge(self, other: RunTotals) -> RunTotals:
        """Totals of both sets of patients."""
        return RunTotals(
            patients=self.patients + other.patients,
            visits=self.visits + other.visits,
            injections=self.injections + other.injections,
            follow_up_days=self.follow_up_days + other.follow_up_days,
            baseline_vision_sum=self.baseline_vision_sum + other.baseline_vision_sum,
            final_vision_sum=self.final_vision_sum + other.final_vision_sum,
            discontinued_by_reason=_add(self.discontinued_by_reason, other.discontinued_by_reason),
            final_state_counts=_add(self.final_state_counts, other.final_state_counts),
        )

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
                    DISCONTINUATION_REASON_NAMES, self.discontinued_by_reason, strict=True
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


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))
