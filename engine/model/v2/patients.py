"""Patients at enrolment (docs/model.md 2): age, sex, baseline VA, ceiling, response, gain factor.

Every draw is at step 0 with its own purpose, so a patient is the same person under every
protocol that shares the demographics and baseline distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.model.v2.draws import RandomSource
from engine.model.v2.random_numbers import Purpose
from engine.model.v2.tables import BASELINE_TYPES, TimeBasedTables

__all__ = ["Enrolled", "enrol"]


@dataclass(frozen=True, slots=True)
class Enrolled:
    """Per-patient values drawn at enrolment (block arrays, in id order)."""

    age: npt.NDArray[np.float64]  # years
    sex: npt.NDArray[np.int8]  # 0 female, 1 male
    baseline: npt.NDArray[np.float64]  # true VA, letters, continuous
    ceiling: npt.NDArray[np.float64]
    responder: npt.NDArray[np.bool_]
    gain_factor: npt.NDArray[np.float64]  # multiplies improvement-phase gains (1: the origin)


def enrol(tables: TimeBasedTables, source: RandomSource) -> Enrolled:
    """Draw every patient of `source`'s block."""
    band = np.searchsorted(
        tables.age_band_cumulative, source.uniform(0, Purpose.AGE_BAND), side="right"
    )
    np.minimum(band, len(tables.age_band_cumulative) - 1, out=band)
    lo, hi = tables.age_band_lo[band], tables.age_band_hi[band]
    age = lo + source.uniform(0, Purpose.AGE_WITHIN_BAND) * (hi - lo) + tables.age_shift
    whole = np.clip(np.floor(age), 0, len(tables.female_share_by_age) - 1).astype(np.intp)
    sex = (source.uniform(0, Purpose.SEX) >= tables.female_share_by_age[whole]).astype(np.int8)
    baseline = baseline_vision(tables, source)
    responder = source.uniform(0, Purpose.RESPONDER) < tables.responder_probability
    return Enrolled(
        age,
        sex,
        baseline,
        ceilings(tables, baseline),
        responder,
        gain_factors(tables, source, len(baseline)),
    )


def gain_factors(
    tables: TimeBasedTables, source: RandomSource, size: int
) -> npt.NDArray[np.float64]:
    """Per-patient multiplier of improvement gains: lognormal, mean 1 (docs/model.md 3.3).

    With ``patient_gain_cv`` 0 every factor is exactly 1 and nothing is drawn, so the origin's
    model is unchanged; the draw has its own purpose, so it changes no other draw either.
    """
    sigma = tables.gain_sigma
    if sigma == 0.0:
        return np.ones(size, dtype=np.float64)
    z = source.normal(0, Purpose.GAIN_FACTOR)
    return np.exp(sigma * z - 0.5 * sigma * sigma)


def baseline_vision(tables: TimeBasedTables, source: RandomSource) -> npt.NDArray[np.float64]:
    """True baseline VA from the protocol's distribution (continuous letters)."""
    kind = BASELINE_TYPES[tables.baseline_type]
    lo, hi = tables.baseline_min, tables.baseline_max
    if kind == "normal":
        z = source.normal(0, Purpose.BASELINE_VISION)
        return np.clip(tables.baseline_mean + tables.baseline_std * z, lo, hi)
    u = source.uniform(0, Purpose.BASELINE_VISION)
    if kind == "uniform":
        return lo + u * (hi - lo)
    return lo + (hi - lo) * np.interp(u, tables.beta_cdf, tables.beta_grid)


def ceilings(tables: TimeBasedTables, baseline: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Highest true VA: min(factor x baseline, or baseline + gain, and the absolute ceiling)."""
    absolute = np.where(
        baseline > tables.ceiling_high_threshold,
        tables.ceiling_high,
        np.where(
            baseline < tables.ceiling_low_threshold, tables.ceiling_low, tables.ceiling_default
        ),
    )
    if tables.ceiling_gain >= 0.0:
        return np.minimum(baseline + tables.ceiling_gain, absolute)
    return np.minimum(tables.ceiling_factor * baseline, absolute)
