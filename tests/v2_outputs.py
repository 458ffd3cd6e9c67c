"""Plausible format-2 (time-based model) shard outputs, made up for testing storage and statistics.

Not the model: rows follow the contracts of the v2 `ShardOutput` columns (sorted visits, no
visit after death or discontinuation, milestone VA by last observation at or before the day,
nulls as -1, per-year counts by days since enrolment) with random values, so that every
reading and writing path can be exercised before the kernel exists.
"""

from __future__ import annotations

import itertools

import numpy as np

from engine.columns import PATIENT_COLUMNS_V2, V2_MONTHS, VISIT_COLUMNS, ShardOutput
from engine.model.parameters import DAYS_PER_MONTH
from engine.model.states import V2_REASON_NAMES

__all__ = ["synthetic_v2_output", "synthetic_v2_outputs"]


def synthetic_v2_outputs(
    n_patients: int, shard_size: int, horizon_days: int, seed: int = 0
) -> list[ShardOutput]:
    """One synthetic output per shard of a run of `n_patients`."""
    shards = -(-n_patients // shard_size)
    return [
        synthetic_v2_output(
            k,
            k * shard_size,
            min(shard_size, n_patients - k * shard_size),
            horizon_days,
            seed,
        )
        for k in range(shards)
    ]


def synthetic_v2_output(
    shard_index: int, first_id: int, count: int, horizon_days: int, seed: int = 0
) -> ShardOutput:
    """Shard `shard_index`: patients ``first_id .. first_id + count - 1``."""
    rng = np.random.default_rng([seed, shard_index])
    patients: dict[str, list] = {spec.name: [] for spec in PATIENT_COLUMNS_V2}
    visits: dict[str, list] = {spec.name: [] for spec in VISIT_COLUMNS}
    for offset in range(count):
        pid = first_id + offset
        enrol = int(rng.integers(0, max(1, horizon_days // 3)))
        death = int(rng.integers(enrol + 1, horizon_days)) if rng.random() < 0.15 else -1
        stop = int(rng.integers(enrol + 30, horizon_days)) if rng.random() < 0.3 else -1
        end = min(d for d in (death, stop, horizon_days) if d >= 0)
        # Visits from enrolment every 28-84 days, before death / the horizon; the last one
        # before a discontinuation is the discontinuation visit.
        days = [enrol]
        while days[-1] + 28 < end:
            days.append(days[-1] + int(rng.integers(28, 85)))
        days = [d for d in days if d < end] or [enrol]
        discontinued = stop >= 0 and (death < 0 or stop < death)
        if discontinued:
            stop = days[-1]
        n = len(days)
        vision = np.clip(55 + np.cumsum(rng.integers(-6, 7, n)), 0, 100)
        injected = rng.random(n) < 0.7
        if discontinued:
            injected[-1] = False
        visits["patient_id"] += [pid] * n
        visits["visit"] += list(range(n))
        visits["day"] += days
        visits["vision"] += vision.tolist()
        visits["injected"] += injected.tolist()
        visits["disease_state"] += rng.integers(0, 4, n).tolist()
        visits["interval_days"] += [b - a for a, b in itertools.pairwise(days)] + [-1]
        died_treated = death >= 0 and not discontinued
        since = np.asarray(days) - enrol
        patients["patient_id"].append(pid)
        patients["enrollment_day"].append(enrol)
        patients["baseline_vision"].append(int(vision[0]))
        patients["final_vision"].append(int(np.clip(vision[-1] + rng.integers(-5, 6), 0, 100)))
        patients["final_state"].append(int(rng.integers(0, 4)))
        patients["injections"].append(int(injected.sum()))
        patients["visits"].append(n)
        patients["discontinued"].append(discontinued or died_treated)
        patients["discontinuation_day"].append(stop if discontinued else death)
        reason = int(rng.integers(1, len(V2_REASON_NAMES))) if discontinued else -1
        patients["discontinuation_reason"].append(0 if died_treated else reason)
        patients["age"].append(float(rng.uniform(55, 95)))
        patients["sex"].append(int(rng.integers(0, 2)))
        patients["responder"].append(bool(rng.random() < 0.8))
        patients["death_day"].append(death)
        for month in V2_MONTHS:
            day = enrol + month * DAYS_PER_MONTH
            if day >= horizon_days:
                patients[f"va_m{month}"].append(-1)
                patients[f"treated_m{month}"].append(False)
                continue
            seen = np.searchsorted(np.asarray(days), day, side="right") - 1
            patients[f"va_m{month}"].append(int(vision[seen]))
            alive = death < 0 or death > day
            patients[f"treated_m{month}"].append(alive and not (discontinued and stop <= day))
        for what, values in (("injections", injected), ("visits", np.ones(n, dtype=bool))):
            patients[f"{what}_y1"].append(int(values[since < 364].sum()))
            patients[f"{what}_y2"].append(int(values[(since >= 364) & (since < 728)].sum()))
            patients[f"{what}_later"].append(int(values[since >= 728].sum()))
        patients["alive_days"].append((death if death >= 0 else horizon_days) - enrol)
        patients["treated_days"].append(end - enrol if not discontinued else stop - enrol)
    return ShardOutput(
        shard_index=shard_index,
        patients={s.name: np.asarray(patients[s.name], dtype=s.dtype) for s in PATIENT_COLUMNS_V2},
        visits={s.name: np.asarray(visits[s.name], dtype=s.dtype) for s in VISIT_COLUMNS},
    )
