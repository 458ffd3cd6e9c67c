"""Summarise PSA draws: net monetary benefit, acceptability, EVPI, intervals, Monte Carlo error.

Pure numpy on per-patient means: `costs` and `qalys` are (K, A) arrays over K draws and A arms,
`thresholds` a (T,) array of willingness-to-pay values per QALY.

- NMB(t, k, a) = t * qalys[k, a] - costs[k, a].
- CEAC(t, a): share of draws in which arm a has the highest NMB at t; an arm tied for the
  highest gets an equal share of that draw.
- EVPI(t) = mean_k max_a NMB - max_a mean_k NMB: what deciding with the uncertainty resolved
  would gain per patient.
- Each draw's mean carries Monte Carlo error from its finite cohort; `monte_carlo_vs_between`
  sets it against the spread between draws so a user can choose patients per draw (N) and
  draws (K).

Does not cover: drawing parameters (`engine.psa.sampling`), per-patient totals, charts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "MONTE_CARLO_SHARE",
    "ceac",
    "evpi",
    "intervals",
    "monte_carlo_vs_between",
    "net_monetary_benefit",
]

# Above this ratio of Monte Carlo SE to between-draw SD, per-draw noise visibly widens the
# PSA's spread (variances add: at 1/3 it inflates the SD by about 5 %).
MONTE_CARLO_SHARE = 1 / 3

Array = npt.NDArray[np.float64]


def net_monetary_benefit(
    costs: npt.ArrayLike, qalys: npt.ArrayLike, thresholds: npt.ArrayLike
) -> Array:
    """(T, K, A) net monetary benefit ``threshold * qalys - costs`` per patient."""
    c, q, t = _inputs(costs, qalys, thresholds)
    return t[:, None, None] * q[None, :, :] - c[None, :, :]


def ceac(costs: npt.ArrayLike, qalys: npt.ArrayLike, thresholds: npt.ArrayLike) -> Array:
    """(T, A) probability that each arm has the highest NMB, over draws; ties split equally."""
    nmb = net_monetary_benefit(costs, qalys, thresholds)
    if nmb.shape[1] == 0:
        return np.full((nmb.shape[0], nmb.shape[2]), np.nan)
    best = nmb == nmb.max(axis=2, keepdims=True)
    share = best / best.sum(axis=2, keepdims=True)
    return share.mean(axis=1)


def evpi(costs: npt.ArrayLike, qalys: npt.ArrayLike, thresholds: npt.ArrayLike) -> Array:
    """(T,) per-patient expected value of perfect information: E[max NMB] - max E[NMB]."""
    nmb = net_monetary_benefit(costs, qalys, thresholds)
    value = nmb.max(axis=2).mean(axis=1) - nmb.mean(axis=1).max(axis=1)
    # Rounding can leave a tiny negative where one arm is always best.
    return np.maximum(value, 0.0)


def intervals(values: npt.ArrayLike, level: float = 0.95) -> tuple[Array, Array]:
    """Percentile interval over draws (axis 0): (low, high), each of shape ``values.shape[1:]``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    array = np.asarray(values, dtype=np.float64)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(array, [tail, 100 - tail], axis=0)
    return low, high


def monte_carlo_vs_between(
    draw_means: Sequence[float] | Array, draw_standard_errors: Sequence[float] | Array
) -> dict[str, float | str]:
    """Monte Carlo error within draws against the spread between draws, with advice.

    Returns ``between_draws_sd`` (SD of the K draw means), ``monte_carlo_se`` (root mean square
    of the draws' standard errors), ``ratio`` (the second over the first), ``parameter_sd``
    (the between-draw SD with the Monte Carlo variance taken out, ``sqrt(max(0, sd^2 - se^2))``),
    ``mean_se`` (the SE of the mean over draws, ``sd / sqrt(K)``) and ``advice``, a sentence.
    """
    means = np.asarray(draw_means, dtype=np.float64)
    errors = np.asarray(draw_standard_errors, dtype=np.float64)
    if means.shape != errors.shape or means.ndim != 1:
        raise ValueError("draw_means and draw_standard_errors must be 1-D and of equal length")
    count = means.size
    monte_carlo = float(np.sqrt(np.mean(errors**2))) if count else math.nan
    if count < 2:
        return {
            "between_draws_sd": math.nan,
            "monte_carlo_se": monte_carlo,
            "ratio": math.nan,
            "parameter_sd": math.nan,
            "mean_se": math.nan,
            "advice": "Run at least 2 draws to compare Monte Carlo error with the spread.",
        }
    between = float(np.std(means, ddof=1))
    ratio = monte_carlo / between if between > 0 else math.inf
    parameter = math.sqrt(max(0.0, between**2 - monte_carlo**2))
    mean_se = between / math.sqrt(count)
    if ratio > MONTE_CARLO_SHARE:
        factor = (ratio / MONTE_CARLO_SHARE) ** 2
        advice = (
            f"Monte Carlo error is {ratio:.0%} of the spread between draws: each draw's cohort "
            f"is too small, so more patients per draw (N) is the lever; about {factor:.1f} "
            f"times N would bring it to a third."
        )
    else:
        advice = (
            f"Monte Carlo error is {ratio:.0%} of the spread between draws, so the spread is "
            f"parameter uncertainty: more draws (K) is the lever; the mean over {count} draws "
            f"has SE {mean_se:.4g} and halving it takes 4 times K."
        )
    return {
        "between_draws_sd": between,
        "monte_carlo_se": monte_carlo,
        "ratio": ratio,
        "parameter_sd": parameter,
        "mean_se": mean_se,
        "advice": advice,
    }


def _inputs(
    costs: npt.ArrayLike, qalys: npt.ArrayLike, thresholds: npt.ArrayLike
) -> tuple[Array, Array, Array]:
    c = np.asarray(costs, dtype=np.float64)
    q = np.asarray(qalys, dtype=np.float64)
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if c.ndim != 2 or c.shape != q.shape:
        raise ValueError(f"costs and qalys must both be (draws, arms); got {c.shape}, {q.shape}")
    if t.ndim != 1:
        raise ValueError(f"thresholds must be 1-D, got shape {t.shape}")
    return c, q, t
