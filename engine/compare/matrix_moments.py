"""Count, mean vector and co-moment matrix of per-patient vectors, mergeable exactly like `Moments`.

A comparison keeps, per arm and per pair of arms, the moments of a vector of per-patient
quantities (counts of visits by type, years in VA bands, ...). Cost and QALYs are linear in
that vector (prices and utilities are its weights), so the mean, variance and covariance of
any cost or QALY total follow from these moments alone: ``mean = w @ mu``,
``cov(a, b) = a @ M2 @ b / (n - 1)``. That is how a PSA draw that changes only prices or
utilities is served without simulating again.

Merging uses Chan, Golub and LeVeque's pairwise update, generalised to the co-moment matrix:
``M2 = M2_a + M2_b + outer(d, d) * n_a * n_b / n`` with ``d = mean_b - mean_a``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["MatrixMoments", "MatrixMomentsState"]


class MatrixMomentsState(msgspec.Struct, frozen=True, array_like=True):
    """`MatrixMoments` as plain lists, for messages and files."""

    count: int
    mean: list[float]
    m2: list[list[float]]


class MatrixMoments:
    """Moments of `count` vectors of length `size`."""

    def __init__(self, count: int, mean: npt.NDArray[np.float64], m2: npt.NDArray[np.float64]):
        self.count = count
        self.mean = mean
        self.m2 = m2

    @classmethod
    def empty(cls, size: int) -> MatrixMoments:
        """No vectors yet."""
        return cls(0, np.zeros(size), np.zeros((size, size)))

    @classmethod
    def of(cls, values: npt.NDArray[np.float64]) -> MatrixMoments:
        """Moments of the rows of `values` (patients x quantities), in two passes."""
        values = np.asarray(values, dtype=np.float64)
        if len(values) == 0:
            return cls.empty(values.shape[1])
        mean = values.mean(axis=0)
        centred = values - mean
        return cls(len(values), mean, centred.T @ centred)

    @property
    def size(self) -> int:
        """Length of each vector."""
        return len(self.mean)

    def merge(self, other: MatrixMoments) -> MatrixMoments:
        """Moments of both sets of vectors."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.count * other.count / count)
        return MatrixMoments(count, mean, m2)

    @classmethod
    def merge_all(cls, parts: Iterable[MatrixMoments], size: int) -> MatrixMoments:
        """Merge in the order given (the order fixes the last bits)."""
        total = cls.empty(size)
        for part in parts:
            total = total.merge(part)
        return total

    def covariance(self) -> npt.NDArray[np.float64]:
        """Sample covariance matrix (n - 1 in the denominator); NaN for fewer than two."""
        if self.count < 2:
            return np.full_like(self.m2, np.nan)
        return self.m2 / (self.count - 1)

    def linear(self, weights: npt.ArrayLike, constant: float = 0.0) -> tuple[float, float]:
        """Mean and sample variance of ``weights @ vector + constant`` over the vectors."""
        w = np.asarray(weights, dtype=np.float64)
        mean = float(w @ self.mean) + constant
        variance = float(w @ self.covariance() @ w) if self.count > 1 else float("nan")
        return mean, variance if math.isnan(variance) else max(variance, 0.0)

    def linear_covariance(self, a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        """Sample covariance of ``a @ vector`` and ``b @ vector``."""
        if self.count < 2:
            return float("nan")
        return float(np.asarray(a, dtype=np.float64) @ self.covariance() @ np.asarray(b))

    def state(self) -> MatrixMomentsState:
        """Plain lists for a message or a file."""
        return MatrixMomentsState(self.count, self.mean.tolist(), self.m2.tolist())

    @classmethod
    def from_state(cls, state: MatrixMomentsState) -> MatrixMoments:
        """Back from `state`."""
        return cls(
            state.count,
            np.asarray(state.mean, dtype=np.float64),
            np.asarray(state.m2, dtype=np.float64).reshape(len(state.mean), len(state.mean)),
        )
