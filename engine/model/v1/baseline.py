"""Baseline vision at enrolment: the distribution compiled once, drawn once per patient.

The older `baseline_vision` and a `baseline_vision_distribution` of type `normal` draw one
standard normal per patient at the same stream position, so both give the same patients.
The other types draw one uniform per patient there instead (the stream then differs from the
normal's, which only protocols of those types see). Values are whole letters: rounded, then
clipped to [min, max].

- uniform: every whole letter from ceil(min) to floor(max) equally likely (as the origin's
  `randint`);
- beta, beta_with_threshold: min + (max - min) * X, X by the inverse of the distribution
  function, tabulated once on a grid of 4,097 points (linear in between); with a threshold,
  the density above it is multiplied by 1 - threshold_reduction and renormalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from engine.model.v1.protocol import Protocol

__all__ = ["GRID_POINTS", "Baseline", "compile_baseline", "draw_baseline"]

GRID_POINTS = 4097
_SUBSTEPS = 16  # midpoint sub-intervals per grid cell when integrating the density


@dataclass(frozen=True, slots=True, eq=False)
class Baseline:
    """A compiled baseline distribution (letters)."""

    kind: Literal["normal", "uniform", "beta"]
    mean: float
    std: float
    min: float
    max: float
    # beta: X at GRID_POINTS equally spaced values of the distribution function
    quantiles: npt.NDArray[np.float64] | None = None


def compile_baseline(protocol: Protocol) -> Baseline:
    """The baseline of a validated protocol (either layout)."""
    old = protocol.baseline_vision
    if old is not None:
        return Baseline("normal", old.mean, old.std, old.min, old.max)
    dist = protocol.baseline_vision_distribution
    assert dist is not None  # the loader requires exactly one of the two
    if dist.type == "normal":
        assert dist.mean is not None and dist.std is not None
        return Baseline("normal", dist.mean, dist.std, dist.min, dist.max)
    if dist.type == "uniform":
        return Baseline("uniform", 0.0, 0.0, dist.min, dist.max)
    assert dist.alpha is not None and dist.beta is not None
    cut, keep = 1.0, 1.0
    if dist.type == "beta_with_threshold":
        assert dist.threshold is not None and dist.threshold_reduction is not None
        cut = (dist.threshold - dist.min) / (dist.max - dist.min)
        keep = 1.0 - dist.threshold_reduction
    quantiles = beta_quantiles(dist.alpha, dist.beta, cut, keep)
    return Baseline("beta", 0.0, 0.0, dist.min, dist.max, quantiles)


def beta_quantiles(alpha: float, beta: float, cut: float, keep: float) -> np.ndarray:
    """X at probabilities 0, 1/4096, ..., 1 of Beta(alpha, beta) with the density above `cut`
    multiplied by `keep`, renormalised (alpha, beta >= 1, so the density is bounded)."""
    cells = GRID_POINTS - 1
    edges = np.linspace(0.0, 1.0, cells * _SUBSTEPS + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    log_density = (alpha - 1) * np.log(mid) + (beta - 1) * np.log1p(-mid)
    density = np.exp(log_density - log_density.max())
    density[mid > cut] *= keep
    cdf = np.concatenate([[0.0], np.cumsum(density)])
    cdf /= cdf[-1]
    probabilities = np.linspace(0.0, 1.0, GRID_POINTS)
    # The distribution function is increasing where the density is positive; np.interp
    # inverts it (a flat stretch, density 0 above the cut, is never drawn inside).
    quantiles = np.interp(probabilities, cdf, edges)
    quantiles.setflags(write=False)
    return quantiles


def draw_baseline(
    baseline: Baseline, rng: np.random.Generator, size: int
) -> npt.NDArray[np.float32]:
    """`size` baseline values in whole letters (float32), one draw per patient."""
    if baseline.kind == "normal":  # exactly the older draw: float32 throughout
        values = rng.standard_normal(size, dtype=np.float32)
        values *= np.float32(baseline.std)
        values += np.float32(baseline.mean)
        np.rint(values, out=values)
        np.clip(values, baseline.min, baseline.max, out=values)
        return values
    u = rng.random(size)
    if baseline.kind == "uniform":
        low, high = math.ceil(baseline.min), math.floor(baseline.max)
        letters = np.minimum(np.floor(low + u * (high - low + 1)), high)
        return letters.astype(np.float32)
    assert baseline.quantiles is not None
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    x = np.interp(u, grid, baseline.quantiles)
    letters = np.rint(baseline.min + (baseline.max - baseline.min) * x)
    return np.clip(letters, baseline.min, baseline.max).astype(np.float32)
