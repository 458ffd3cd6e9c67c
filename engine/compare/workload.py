"""Clinic workload from visits per calendar week by type: peak, steady state and sessions.

A clinic plans in sessions: a session sees `capacity` patients (a setting of the
comparison, since it is the clinic's own figure, not a published one). For a cohort that all
enrols on day 0 the peak is the loading phase; for recruitment over a period or at a rate the
steady state is what the service must staff for: here the mean over the last 52 weeks of the
horizon (or all weeks, when the horizon is shorter). The last week is left out when the
horizon ends inside it, so a partial week never reads as a drop in demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from engine.compare.features import VISIT_TYPES

__all__ = ["STEADY_WEEKS", "workload_summary"]

STEADY_WEEKS = 52


def workload_summary(
    weekly: npt.NDArray[np.int64],
    capacity: float,
    patients: int,
    difference: bool = False,
) -> dict[str, Any]:
    """Visits per week by type and in total, their peak and steady state, sessions needed.

    `weekly` is (visit types, weeks). With `difference`, the arrays are one arm minus another
    and "peak" is the week of the largest absolute difference.
    """
    weekly = np.asarray(weekly, dtype=np.float64)
    total = weekly.sum(axis=0)
    weeks = len(total)
    steady = slice(max(0, weeks - STEADY_WEEKS), weeks)
    peak_week = int(np.argmax(np.abs(total) if difference else total)) if weeks else 0
    by_type = {
        kind: {
            "mean_per_week": float(weekly[k].mean()) if weeks else 0.0,
            "steady_state_per_week": float(weekly[k, steady].mean()) if weeks else 0.0,
        }
        for k, kind in enumerate(VISIT_TYPES)
    }
    steady_total = float(total[steady].mean()) if weeks else 0.0
    peak_total = float(total[peak_week]) if weeks else 0.0
    return {
        "weeks": weeks,
        "patients": patients,
        "session_capacity": capacity,
        "by_type": by_type,
        "mean_visits_per_week": float(total.mean()) if weeks else 0.0,
        "peak_week": peak_week + 1,  # weeks are counted from 1 in the text
        "peak_visits": peak_total,
        "steady_state_visits_per_week": steady_total,
        "peak_sessions": peak_total / capacity,
        "steady_state_sessions_per_week": steady_total / capacity,
        "weekly_visits": {kind: weekly[k].tolist() for k, kind in enumerate(VISIT_TYPES)},
    }
