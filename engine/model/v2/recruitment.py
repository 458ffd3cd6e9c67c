"""Enrolment days of the time-based model from common random numbers (docs/model.md 9).

Patient ``i``'s arrival is the sum of gaps ``g_0..g_i``, ``g_j = -ln(1 - U_j)`` with ``U_j``
keyed on id ``j`` (purpose ENROLMENT, step 0). Ids form fixed blocks of 4,096; the total of
every block is computed once per process and cached, so a shard needs the draws of its own
blocks only and its days do not depend on shard size or grouping.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from engine.model.parameters import RunParameters
from engine.model.v2.random_numbers import CounterRandom, Purpose

__all__ = ["ID_BLOCK", "enrolment_days"]

ID_BLOCK = 4096


def _gaps(seed: int, first: int, stop: int) -> npt.NDArray[np.float64]:
    """Exponential gaps of ids first..stop-1."""
    uniforms = CounterRandom(seed, np.arange(first, stop, dtype=np.int64)).uniform(
        0, Purpose.ENROLMENT
    )
    return -np.log1p(-uniforms)


@functools.lru_cache(maxsize=8)
def _block_starts(seed: int, n_ids: int) -> npt.NDArray[np.float64]:
    """Sum of the gaps of all ids before each block of 4,096 (ids 0..n_ids-1), cached."""
    totals = [
        float(_gaps(seed, lo, min(lo + ID_BLOCK, n_ids)).sum()) for lo in range(0, n_ids, ID_BLOCK)
    ]
    return np.concatenate(([0.0], np.cumsum(totals)))


def enrolment_days(
    params: RunParameters, patient_ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.int32]:
    """Enrolment day of each of `patient_ids` (sorted, consecutive ids)."""
    recruitment = params.recruitment
    if recruitment.mode == "cohort" or len(patient_ids) == 0:
        return np.zeros(len(patient_ids), dtype=np.int32)
    n = params.n_patients
    # Period mode normalises by the sum of N + 1 gaps, the last keyed on id N.
    starts = _block_starts(params.seed, n + 1 if recruitment.mode == "period" else n)
    first, last = int(patient_ids[0]), int(patient_ids[-1])
    lo = first - first % ID_BLOCK
    gaps = _gaps(params.seed, lo, last + 1)
    # Cumulated block by block from each block's cached start, so a patient's arrival is the
    # same numbers whichever shard it is in.
    arrivals = np.empty(len(gaps))
    for start in range(0, len(gaps), ID_BLOCK):
        stop = min(start + ID_BLOCK, len(gaps))
        arrivals[start:stop] = starts[(lo + start) // ID_BLOCK] + np.cumsum(gaps[start:stop])
    arrivals = arrivals[first - lo :]
    if recruitment.mode == "rate":
        days = np.floor(arrivals * 7.0 / recruitment.patients_per_week)
    else:
        days = np.floor(arrivals / starts[-1] * recruitment.period_days)
    np.minimum(days, params.horizon_days - 1, out=days)
    return days.astype(np.int32)
