"""Turn a simulated block's rows and per-patient results into `ShardOutput`s (contracts).

Rows arrive visit sub-step by sub-step; each is scattered once to ``first row of its patient
+ its visit number``, which is (patient_id, visit) order. Outcome columns (VA at milestones,
treatment status, yearly counts) are computed here from the rows and the per-patient days.
"""

from __future__ import annotations

import math

import numpy as np

from engine.columns import NULL, Columns, ShardOutput
from engine.model.parameters import DAYS_PER_MONTH
from engine.model.v2.block_state import BlockState

__all__ = ["MONTHS", "block_outputs"]

MONTHS = (3, 6, 12, 24, 36, 60)
_YEAR_ENDS = (364, 728)  # year 1: t < 364, year 2: t < 728, later years after


def block_outputs(block: BlockState) -> list[ShardOutput]:
    """One `ShardOutput` per shard of the block, in order."""
    size = block.size
    if block.rows:
        pid, visit, t, vision, injected, state = (
            np.concatenate([chunk[i] for chunk in block.rows]) for i in range(6)
        )
    else:
        pid = visit = t = vision = np.zeros(0, dtype=np.int64)
        injected = np.zeros(0, dtype=bool)
        state = np.zeros(0, dtype=np.int64)
    counts = np.bincount(pid, minlength=size)
    starts = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    position = starts[pid] + visit
    order = np.empty(len(pid), dtype=np.int64)
    order[position] = np.arange(len(pid))
    pid, t, vision, injected, state, visit = (
        np.take(a, order) for a in (pid, t, vision, injected, state, visit)
    )

    enrolment = block.enrolment.astype(np.int64)
    day = t + enrolment[pid]
    interval = np.empty(len(pid), dtype=np.int16)  # engine.columns: int16, -1 null
    np.subtract(day[1:], day[:-1], out=interval[:-1], casting="unsafe")
    last_row = starts[1:] - 1
    interval[last_row[counts > 0]] = NULL

    limit = block.horizon - enrolment  # days of follow-up the horizon allows
    death_t = block.death_t
    alive_days = np.where(death_t >= 0, death_t, limit)
    stop_t = block.stop_t
    treated_days = np.where(stop_t >= 0, np.minimum(stop_t, alive_days), alive_days)
    e = block.enrolled
    patients: Columns = {
        "patient_id": np.arange(block.first_id, block.first_id + size, dtype=np.int32),
        "enrollment_day": enrolment.astype(np.int32),
        "baseline_vision": block.baseline_measured.astype(np.int16),
        "final_vision": np.rint(block.final_va).astype(np.int16),
        "final_state": block.final_state.copy(),
        "injections": np.bincount(pid[injected], minlength=size).astype(np.int32),
        "visits": counts.astype(np.int32),
        "discontinued": block.reason != NULL,
        "discontinuation_day": np.where(stop_t >= 0, stop_t + enrolment, NULL).astype(np.int32),
        "discontinuation_reason": block.reason.copy(),
        "age": e.age.astype(np.float32),
        "sex": e.sex.copy(),
        "responder": e.responder.copy(),
        "death_day": np.where(death_t >= 0, death_t + enrolment, NULL).astype(np.int32),
    }
    for m in MONTHS:
        # Whole days (60 months = day 1826 = the horizon of a 5-year cohort, which counts:
        # the last visit before it is the 5-year value); on treatment "on" the horizon
        # means through the last simulated day.
        milestone = math.floor(m * DAYS_PER_MONTH)
        reached = milestone <= limit
        seen = np.bincount(pid[t <= milestone], minlength=size)
        row = np.maximum(starts[:-1] + seen - 1, 0)
        va = vision[np.minimum(row, max(len(vision) - 1, 0))] if len(vision) else row
        patients[f"va_m{m}"] = np.where(reached & (seen > 0), va, NULL).astype(np.int16)
        patients[f"treated_m{m}"] = reached & (np.minimum(milestone, limit - 1) < treated_days)
    year = (t >= _YEAR_ENDS[0]).astype(np.int64) + (t >= _YEAR_ENDS[1])
    key = pid * 3 + year
    shots = np.bincount(key[injected], minlength=3 * size).reshape(size, 3)
    seen_visits = np.bincount(key, minlength=3 * size).reshape(size, 3)
    for column, label in enumerate(("y1", "y2", "later")):
        patients[f"injections_{label}"] = shots[:, column].astype(np.int32)
        patients[f"visits_{label}"] = seen_visits[:, column].astype(np.int32)
    patients["alive_days"] = alive_days.astype(np.int32)
    patients["treated_days"] = treated_days.astype(np.int32)

    visits: Columns = {
        "patient_id": (pid + block.first_id).astype(np.int32),
        "visit": visit.astype(np.int16),
        "day": day.astype(np.int32),
        "vision": vision.astype(np.int16),
        "injected": injected.astype(bool),
        "disease_state": state.astype(np.int8),
        "interval_days": interval,
    }
    outputs = []
    for b, shard in enumerate(block.shard_indices):
        lo, hi = int(block.shard_starts[b]), int(block.shard_starts[b + 1])
        r_lo, r_hi = int(starts[lo]), int(starts[hi])
        outputs.append(
            ShardOutput(
                shard_index=shard,
                patients={name: values[lo:hi] for name, values in patients.items()},
                visits={name: values[r_lo:r_hi] for name, values in visits.items()},
            )
        )
    return outputs
