"""Running count, mean and variance that merge exactly as if computed on all values at once.

Chan, Golub and LeVeque's pairwise update combines two partial results without revisiting
values and without the cancellation of the sum-of-squares formula. Merging in a different
order changes only the last bits; `engine.stats.tree` fixes the order where that matters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["Moments"]


class Moments(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Count, mean and M2 (the sum of squared deviations from the mean)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: npt.ArrayLike) -> Moments:
        """Moments of `values`, computed in two passes for accuracy."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) == 0:
            return cls()
        mean = float(values.mean())
        return cls(count=len(values), mean=mean, m2=float(((values - mean) ** 2).sum()))

    @classmethod
    def of_counts(cls, values: npt.ArrayLike, counts: npt.ArrayLike) -> Moments:
        """Moments of `values[i]` repeated `counts[i]` times."""
        values = np.asarray(values, dtype=np.float64).ravel()
        counts = np.asarray(counts, dtype=np.int64).ravel()
        n = int(counts.sum())
        if n == 0:
            return cls()
        mean = float((values * counts).sum() / n)
        return cls(count=n, mean=mean, m2=float((counts * (values - mean) ** 2).sum()))

    def merge(self, other: Moments) -> Moments:
        """Moments of both sets of values (Chan et al.)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        return Moments(count=count, mean=mean, m2=m2)

    @classmethod
    def merge_all(cls, parts: Iterable[Moments]) -> Moments:
        """Merge in the order given."""
        total = cls()
        for part in parts:
            total = total.merge(part)
        return total

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); NaN for fewer than two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation; NaN for fewer than two values."""
        return math.sqrt(self.variance) if self.count > 1 else math.nan
