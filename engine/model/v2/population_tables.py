"""Tables of the patients' side of the time-based model: age bands, sex, life table, baseline.

docs/model.md sections 2 and 3.1: the age-band and female-share tables, the fortnightly death
probability by (sex, whole age) with the hazard ratio, population multiplier and survival
bias, and the beta distribution function tabulated for inverse-CDF sampling of baseline VA.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.model.parameters import DAYS_PER_YEAR
from engine.model.v2.checks import parse_band
from engine.model.v2.schema import BaselineVisionDistribution, DemographicsFile, MortalityFile

__all__ = ["BETA_GRID_POINTS", "band_bounds", "beta_table", "death_table", "female_share"]

FloatArray = npt.NDArray[np.float64]
BETA_GRID_POINTS = 4097
_BETA_SUBSTEPS = 32  # integration steps per grid interval of the beta density


def band_bounds(name: str) -> tuple[float, float]:
    """Ages covered by a band: ``"a-b"`` is [a, b + 1), ``"N+"`` is [N, N + 5) (`parse_band`)."""
    bounds = parse_band(str(name))
    if bounds is None:
        raise ValueError(f"age band {name!r} is neither 'a-b' nor 'N+'")
    return float(bounds[0]), float(bounds[1])


def _band_of(bands: list[tuple[float, float]], age: int) -> int | None:
    for index, (lo, hi) in enumerate(bands):
        if lo <= age < hi:
            return index
    return None


def death_table(
    mortality: MortalityFile, demographics: DemographicsFile, multiplier: float
) -> tuple[FloatArray, int, int]:
    """Fortnightly death probability by (sex, whole age) per docs/model.md 3.1."""
    tables = mortality.mortality_rates
    keys = sorted(set(tables.female) | set(tables.male))
    first, last = keys[0], keys[-1]
    ages = np.arange(first, last + 1)
    ratio = mortality.hazard_ratios.primary
    bands = [band_bounds(name) for name in demographics.survival_bias_factors]
    factors = list(demographics.survival_bias_factors.values())
    out = []
    for table in (tables.female, tables.male):  # sex codes 0 = female, 1 = male
        known = sorted(table)
        q = np.array([table[max([k for k in known if k <= a] or [known[0]])] for a in ages])
        survival = np.ones(len(ages))
        for index, age in enumerate(ages):
            band = _band_of(bands, int(age))
            if band is not None:
                survival[index] = 1.0 + (factors[band] - 1.0) * (ratio - 1.0) / ratio
        with np.errstate(divide="ignore"):
            rate = -np.log1p(-q) * ratio * multiplier * survival
        out.append(-np.expm1(-rate * 14.0 / DAYS_PER_YEAR))
    return np.concatenate(out), first, len(ages)


def female_share(demographics: DemographicsFile, shift: float) -> FloatArray:
    """Female share by whole year of age 0..150 (outside the bands: the nearest band)."""
    bands = [band_bounds(name) for name in demographics.gender_distribution_by_age]
    shares = list(demographics.gender_distribution_by_age.values())
    order = np.argsort([lo for lo, _ in bands])
    out = np.empty(151)
    for age in range(151):
        band = _band_of(bands, age)
        if band is None:
            band = int(order[0]) if age < bands[order[0]][0] else int(order[-1])
        out[age] = shares[band]
    return np.clip(out + shift, 0.0, 1.0)


def beta_table(dist: BaselineVisionDistribution) -> tuple[FloatArray, FloatArray]:
    """CDF of the (thresholded) beta on 4,097 points of [0, 1] for inverse-CDF sampling."""
    if dist.type not in ("beta", "beta_with_threshold"):
        return np.zeros(0), np.zeros(0)
    if dist.alpha is None or dist.beta is None:
        raise ValueError("a beta baseline distribution needs alpha and beta")
    fine = np.linspace(0.0, 1.0, (BETA_GRID_POINTS - 1) * _BETA_SUBSTEPS + 1)
    # Midpoint rule: each fine interval is wholly on one side of the threshold.
    mid = (fine[1:] + fine[:-1]) * 0.5
    density = mid ** (dist.alpha - 1.0) * (1.0 - mid) ** (dist.beta - 1.0)
    if dist.type == "beta_with_threshold" and dist.threshold is not None:
        cut = (dist.threshold - dist.min) / (dist.max - dist.min)
        reduction = dist.threshold_reduction or 0.0
        density = np.where(mid > cut, density * (1.0 - reduction), density)
    cdf = np.concatenate(([0.0], np.cumsum(density)))
    cdf /= cdf[-1]
    return np.linspace(0.0, 1.0, BETA_GRID_POINTS), cdf[::_BETA_SUBSTEPS].copy()
