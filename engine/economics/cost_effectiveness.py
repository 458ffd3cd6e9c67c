"""Cost-effectiveness statistics of a paired comparison: ICER, Fieller interval, NMB, dominance.

Two arms simulate the same patients (common random numbers), so each patient has a cost
difference and a QALY difference, always *second arm minus first arm*. The functions take
the moments the simulation keeps of those per-patient differences: the means (``mean_dc``,
``mean_dq``), the per-patient sample variances (``var_dc``, ``var_dq``), their per-patient
covariance (``cov``) and the number of patients ``n``; the standard error of a mean is
``sqrt(var / n)``. Intervals use the normal quantile: n is large (thousands of patients).

Fieller's theorem. With a = mean_dc, b = mean_dq, s_cc = var_dc/n, s_qq = var_dq/n,
s_cq = cov/n and z the normal quantile of (1 + level)/2, the confidence set of R = dc/dq is
the set of R where (a - R b)^2 <= z^2 (s_cc - 2 R s_cq + R^2 s_qq), that is
A R^2 + B R + C <= 0 with A = b^2 - z^2 s_qq, B = -2 (a b - z^2 s_cq), C = a^2 - z^2 s_cc.
If A > 0 (the QALY difference is significantly non-zero) the set is the interval between
the roots ("bounded"). If A < 0 and the discriminant B^2 - 4 A C > 0 it is the outside of
the roots, (-inf, low] U [high, inf) ("exclusive"); if A < 0 and the discriminant <= 0 it is
the whole line ("unbounded"). Reference: Willan & O'Brien, Health Econ 1996;5:297-305.

Does not cover: computing the moments (the simulation), discounting (the simulation, per
day from enrolment at separate rates for costs and outcomes).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

__all__ = [
    "DOMINANCE_CLASSES",
    "FiellerInterval",
    "dominance",
    "fieller_interval",
    "icer",
    "net_monetary_benefit",
]

DOMINANCE_CLASSES = (
    "no difference",
    "dominant",
    "dominated",
    "more costly, more effective",
    "less costly, less effective",
)


class FiellerInterval(NamedTuple):
    """Fieller confidence set of an ICER.

    ``kind`` is "bounded" (the set is [low, high]), "exclusive" (the set is
    (-inf, low] U [high, inf): the QALY difference is not significantly different from 0)
    or "unbounded" (the whole real line; low and high are nan).
    """

    low: float
    high: float
    kind: str


def icer(mean_dc: float, mean_dq: float) -> float:
    """Incremental cost-effectiveness ratio mean_dc / mean_dq; nan when mean_dq is 0."""
    if mean_dq == 0:
        return math.nan
    return mean_dc / mean_dq


def _z(level: float) -> float:
    """The two-sided normal quantile of a `level` confidence interval."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    return NormalDist().inv_cdf((1 + level) / 2)


def _check_variances(var_dc: float, var_dq: float) -> None:
    if var_dc < 0 or var_dq < 0:
        raise ValueError(f"variances must be >= 0, got var_dc={var_dc!r}, var_dq={var_dq!r}")


_UNBOUNDED = FiellerInterval(math.nan, math.nan, "unbounded")


def fieller_interval(
    mean_dc: float,
    mean_dq: float,
    var_dc: float,
    var_dq: float,
    cov: float,
    n: int,
    level: float = 0.95,
) -> FiellerInterval:
    """Fieller's confidence set for the ICER mean_dc / mean_dq (see the module docstring).

    Degenerate inputs give an answer, never an exception: fewer than 2 patients (no
    variance can be estimated) or any nan input -> "unbounded"; zero variances with
    mean_dq != 0 -> the single point low = high = ICER ("bounded"); zero variances with
    mean_dq == 0 -> no finite ratio -> "unbounded". In the measure-zero case A == 0 the set
    is a half-line, returned as "bounded" with one infinite end.
    """
    z = _z(level)
    _check_variances(var_dc, var_dq)
    values = (mean_dc, mean_dq, var_dc, var_dq, cov)
    if n < 2 or any(math.isnan(v) for v in values):
        return _UNBOUNDED
    if var_dc == 0 and var_dq == 0 and cov == 0:
        ratio = icer(mean_dc, mean_dq)
        return _UNBOUNDED if math.isnan(ratio) else FiellerInterval(ratio, ratio, "bounded")
    z2 = z * z
    a, b = mean_dc, mean_dq
    big_a = b * b - z2 * var_dq / n
    big_b = -2.0 * (a * b - z2 * cov / n)
    big_c = a * a - z2 * var_dc / n
    discriminant = big_b * big_b - 4.0 * big_a * big_c
    if big_a == 0:
        if big_b == 0:  # C <= 0 everywhere or nowhere; either way no finite interval
            return _UNBOUNDED
        root = -big_c / big_b
        if big_b > 0:
            return FiellerInterval(-math.inf, root, "bounded")
        return FiellerInterval(root, math.inf, "bounded")
    if big_a < 0 and discriminant <= 0:
        return _UNBOUNDED
    # When A > 0 the set contains a/b, so the discriminant is >= 0 up to rounding.
    low, high = _roots(big_a, big_b, big_c, max(discriminant, 0.0))
    return FiellerInterval(low, high, "bounded" if big_a > 0 else "exclusive")


def _roots(a: float, b: float, c: float, discriminant: float) -> tuple[float, float]:
    """Both roots of a x^2 + b x + c, ascending, without cancellation (a != 0)."""
    q = -0.5 * (b + math.copysign(math.sqrt(discriminant), b))
    first = q / a
    second = c / q if q != 0 else first
    return (first, second) if first <= second else (second, first)


def net_monetary_benefit(
    mean_dc: float,
    mean_dq: float,
    var_dc: float,
    var_dq: float,
    cov: float,
    n: int,
    threshold: float,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(mean, low, high) of the incremental net monetary benefit threshold x dq - dc.

    Its variance is (threshold^2 var_dq + var_dc - 2 threshold cov) / n; the interval uses
    the normal quantile. With fewer than 2 patients low and high are nan.
    """
    z = _z(level)
    _check_variances(var_dc, var_dq)
    mean = threshold * mean_dq - mean_dc
    if n < 2:
        return mean, math.nan, math.nan
    variance = (threshold * threshold * var_dq + var_dc - 2.0 * threshold * cov) / n
    # A covariance from rounded moments can push a true zero slightly negative.
    half_width = z * math.sqrt(max(variance, 0.0))
    return mean, mean - half_width, mean + half_width


def dominance(mean_dc: float, mean_dq: float) -> str:
    """Where the second arm lies against the first on the cost-effectiveness plane.

    - "no difference": both differences are exactly 0;
    - "dominant": costs less or the same and gains more or the same (not both 0);
    - "dominated": costs more or the same and gains less or the same (not both 0);
    - "more costly, more effective": dc > 0 and dq > 0 (the ICER decides);
    - "less costly, less effective": dc < 0 and dq < 0 (the ICER is saving per QALY lost).

    A nan difference raises ValueError: it has no place on the plane.
    """
    if math.isnan(mean_dc) or math.isnan(mean_dq):
        raise ValueError(f"differences must be numbers, got dc={mean_dc!r}, dq={mean_dq!r}")
    if mean_dc == 0 and mean_dq == 0:
        return "no difference"
    if mean_dc <= 0 and mean_dq >= 0:
        return "dominant"
    if mean_dc >= 0 and mean_dq <= 0:
        return "dominated"
    if mean_dc > 0:
        return "more costly, more effective"
    return "less costly, less effective"
