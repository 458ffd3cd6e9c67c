"""Enrollment days of a shard's patients, exact and independent of how shards are grouped.

A Poisson arrival process gives patient ``i`` the sum of ``i + 1`` exponential gaps, which
couples every shard to all earlier ones. To keep shards independent we draw, once per run from
a dedicated stream, the total of each shard's gaps (``Gamma(size_k)``); within shard ``k`` the
gaps are that total split by a Dirichlet(1, ..., 1) vector drawn from the shard's own stream.
Given their sum, exponential gaps are exactly Dirichlet-distributed, so this is the Poisson
process, not an approximation. Ids are therefore in arrival order.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from engine.model.parameters import RunParameters
from engine.model.shards import RECRUITMENT_STREAM_KEY, shard_bounds, stream_generator

__all__ = ["enrollment_days"]


def enrollment_days(
    params: RunParameters, shard_index: int, rng: np.random.Generator
) -> npt.NDArray[np.int32]:
    """Enrollment day of each patient of the shard; draws from `rng` unless mode is cohort."""
    _, size = shard_bounds(params, shard_index)
    recruitment = params.recruitment
    if recruitment.mode == "cohort":
        return np.zeros(size, dtype=np.int32)
    shard_starts, scale = _shard_starts_and_scale(params)
    gaps = rng.standard_exponential(size)
    within = np.cumsum(gaps)
    span = shard_starts[shard_index + 1] - shard_starts[shard_index]
    arrivals = (shard_starts[shard_index] + within * (span / within[-1])) * scale
    days = np.floor(arrivals)
    # The last arrival can round onto the horizon's edge; keep every enrollment inside it.
    np.minimum(days, params.horizon_days - 1, out=days)
    return days.astype(np.int32)


@functools.lru_cache(maxsize=8)
def _shard_starts_and_scale(params: RunParameters) -> tuple[npt.NDArray[np.float64], float]:
    """Cumulative gap totals at each shard boundary (in mean gaps) and days per mean gap."""
    rng = stream_generator(params.seed, RECRUITMENT_STREAM_KEY)
    sizes = np.full(params.shard_count, params.shard_size, dtype=np.float64)
    sizes[-1] = shard_bounds(params, params.shard_count - 1)[1]
    totals = rng.standard_gamma(sizes)
    starts = np.concatenate(([0.0], np.cumsum(totals)))
    recruitment = params.recruitment
    if recruitment.mode == "rate":
        return starts, 7.0 / recruitment.patients_per_week
    # "period": N arrivals of a Poisson process conditioned to fit the period are N sorted
    # uniforms, i.e. the first N of N + 1 exponential gaps normalised by their sum.
    trailing_gap = rng.standard_exponential()
    return starts, recruitment.period_days / (starts[-1] + trailing_gap)
