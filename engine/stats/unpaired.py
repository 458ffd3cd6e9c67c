"""Differences between two runs that simulated different patients (unpaired), with 95 % CIs.

`amdsim compare` simulates every patient under each protocol (common random numbers), so its
differences are paired and tight. Two runs made separately share no patients: their
difference in a mean is Welch's (unequal variances, Welch-Satterthwaite degrees of freedom),
and in a share of patients the Wald interval for a difference of two proportions (the
cohorts are large: hundreds to millions of patients). These intervals are wider than paired
ones for the same cohorts; the page that shows them says so.
"""

from __future__ import annotations

import math

import msgspec
from scipy import stats as scipy_stats

__all__ = ["Difference", "proportion_difference", "welch_difference"]

Z_95 = 1.959963984540054


class Difference(msgspec.Struct, frozen=True):
    """`b - a` and its 95 % CI (NaN where a side has too few patients)."""

    value: float
    low: float
    high: float


NOT_AVAILABLE = Difference(math.nan, math.nan, math.nan)


def welch_difference(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
) -> Difference:
    """Mean of b minus mean of a, with Welch's 95 % CI."""
    if n_a < 2 or n_b < 2 or not all(map(math.isfinite, (mean_a, sd_a, mean_b, sd_b))):
        return NOT_AVAILABLE
    var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(var_a + var_b)
    diff = mean_b - mean_a
    if se == 0:
        return Difference(diff, diff, diff)
    df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    half = float(scipy_stats.t.ppf(0.975, df)) * se
    return Difference(diff, diff - half, diff + half)


def proportion_difference(share_a: float, n_a: int, share_b: float, n_b: int) -> Difference:
    """Share of b minus share of a (0..1), with the Wald 95 % CI."""
    if n_a < 1 or n_b < 1 or not (math.isfinite(share_a) and math.isfinite(share_b)):
        return NOT_AVAILABLE
    se = math.sqrt(share_a * (1 - share_a) / n_a + share_b * (1 - share_b) / n_b)
    diff = share_b - share_a
    return Difference(diff, diff - Z_95 * se, diff + Z_95 * se)
