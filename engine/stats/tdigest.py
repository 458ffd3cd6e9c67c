"""A merging t-digest in numpy: quantiles of unbounded values in bounded memory.

Centroids (mean, weight) are kept sorted. Adding values or merging another digest pools all
centroids and re-clusters them in one vectorised pass: each centroid's cumulative quantile q
(at its midpoint) is mapped through the k1 scale k(q) = delta / (2 pi) * asin(2q - 1), and
centroids falling in the same unit of k are merged. k1 is steep near q = 0 and 1, so tail
clusters stay small and extreme quantiles precise (Dunning and Ertl, "Computing extremely
accurate quantiles using t-digests", 2019). The result depends only on the multiset of
centroids given, so re-clustering is deterministic; min and max are kept exactly.

Rank error, measured by perf/bench_tdigest.py (10M lognormal values added shard by shard in
4096-value digests, then merged): at most 5e-6 at p1, p5, p50, p95 and p99 with the default
compression of 2000 (about 1000 centroids). Tests allow 1e-4. That script also compares the
libraries we considered (fastdigest, crick, datasketches); none was more accurate, and no
digest gives the same answer whatever the merge order, which `engine.stats.tree` handles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_COMPRESSION", "DigestState", "TDigest"]

DEFAULT_COMPRESSION = 2000.0


class DigestState(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A digest as stored: centroid means and weights as little-endian float64 bytes."""

    compression: float
    count: float
    min: float | None  # None when empty (JSON has no infinity)
    max: float | None
    means: bytes
    weights: bytes


class TDigest:
    """Mergeable quantile sketch. Build with `from_values`, combine with `merge`."""

    __slots__ = ("compression", "count", "max", "means", "min", "weights")

    def __init__(self, compression: float = DEFAULT_COMPRESSION) -> None:
        self.compression = float(compression)
        self.means = np.empty(0)
        self.weights = np.empty(0)
        self.count = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike, compression: float = DEFAULT_COMPRESSION
    ) -> TDigest:
        """A digest of `values` (NaN is not allowed)."""
        digest = cls(compression)
        digest.add(values)
        return digest

    @classmethod
    def from_counts(
        cls, values: npt.ArrayLike, counts: npt.ArrayLike, compression: float = DEFAULT_COMPRESSION
    ) -> TDigest:
        """A digest of `values[i]` repeated `counts[i]` times (cheap for repetitive data)."""
        digest = cls(compression)
        values = np.asarray(values, dtype=np.float64).ravel()
        counts = np.asarray(counts, dtype=np.float64).ravel()
        keep = counts > 0
        if keep.any():
            values, counts = values[keep], counts[keep]
            _check_finite(values)
            digest._absorb(values, counts, float(values.min()), float(values.max()))
        return digest

    def add(self, values: npt.ArrayLike) -> None:
        """Add values (each of weight 1)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) == 0:
            return
        _check_finite(values)
        self._absorb(values, np.ones(len(values)), float(values.min()), float(values.max()))

    def merge(self, others: Iterable[TDigest]) -> TDigest:
        """A new digest of this one and `others`; the inputs are not changed."""
        merged = TDigest(self.compression)
        parts = [self, *others]
        means = np.concatenate([p.means for p in parts])
        weights = np.concatenate([p.weights for p in parts])
        if len(means):
            lowest = min(p.min for p in parts)
            highest = max(p.max for p in parts)
            merged._absorb(means, weights, lowest, highest)
        return merged

    def quantile(self, q: float | npt.ArrayLike) -> float | np.ndarray:
        """Estimated value below which a fraction `q` of the values lie (q in [0, 1])."""
        qs = np.asarray(q, dtype=np.float64)
        if self.count == 0:
            raise ValueError("quantile of an empty t-digest")
        if ((qs < 0) | (qs > 1)).any():
            raise ValueError(f"quantiles must be within [0, 1], got {q}")
        result = self._interpolate(qs * self.count)
        return float(result) if np.ndim(q) == 0 else result

    def cdf(self, value: float) -> float:
        """Estimated fraction of the values at or below `value`."""
        if self.count == 0:
            raise ValueError("cdf of an empty t-digest")
        if value < self.min:
            return 0.0
        if value >= self.max:
            return 1.0
        points, ranks = self._knots()
        return float(np.interp(value, points, ranks) / self.count)

    @property
    def centroid_count(self) -> int:
        """Centroids held."""
        return len(self.means)

    def state(self) -> DigestState:
        """The digest as a serialisable struct."""
        return DigestState(
            compression=self.compression,
            count=self.count,
            min=self.min if self.count else None,
            max=self.max if self.count else None,
            means=self.means.astype("<f8").tobytes(),
            weights=self.weights.astype("<f8").tobytes(),
        )

    @classmethod
    def from_state(cls, state: DigestState) -> TDigest:
        """Rebuild a digest from `state()`."""
        digest = cls(state.compression)
        digest.means = np.frombuffer(state.means, dtype="<f8").copy()
        digest.weights = np.frombuffer(state.weights, dtype="<f8").copy()
        digest.count = state.count
        digest.min = math.inf if state.min is None else state.min
        digest.max = -math.inf if state.max is None else state.max
        return digest

    def _absorb(
        self, means: np.ndarray, weights: np.ndarray, lowest: float, highest: float
    ) -> None:
        means = np.concatenate([self.means, means])
        weights = np.concatenate([self.weights, weights])
        order = np.argsort(means, kind="stable")
        means, weights = means[order], weights[order]
        total = float(weights.sum())
        midpoint = (np.cumsum(weights) - weights / 2) / total
        scale = self.compression / (2 * math.pi)
        cluster = np.floor(scale * np.arcsin(np.clip(2 * midpoint - 1, -1.0, 1.0)))
        starts = np.flatnonzero(np.diff(cluster, prepend=-math.inf))
        merged_weights = np.add.reduceat(weights, starts)
        self.means = np.add.reduceat(means * weights, starts) / merged_weights
        self.weights = merged_weights
        self.count = total
        self.min = min(self.min, lowest)
        self.max = max(self.max, highest)

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, rank) points of the piecewise-linear estimate of the distribution."""
        centres = np.cumsum(self.weights) - self.weights / 2
        points = np.concatenate(([self.min], self.means, [self.max]))
        ranks = np.concatenate(([0.0], centres, [self.count]))
        # A centroid of weight 1 is an exact value: its rank mass sits at one point.
        return points, ranks

    def _interpolate(self, ranks: np.ndarray) -> np.ndarray:
        points, knot_ranks = self._knots()
        return np.interp(ranks, knot_ranks, points)


def _check_finite(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise ValueError("a t-digest holds finite values only (no NaN or infinity)")
