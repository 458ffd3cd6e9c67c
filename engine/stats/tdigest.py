"""A merging t-digest in numpy: quantiles of unbounded values in bounded memory.

Centroids (mean, weight, and the lowest and highest value they hold) are kept sorted. Adding
values or merging another digest pools all centroids and re-clusters them in one vectorised
pass: each centroid's cumulative quantile q (at its midpoint) is mapped through the k1 scale
k(q) = delta / (2 pi) * asin(2q - 1), and centroids falling in the same unit of k are merged.
k1 is steep near q = 0 and 1, so tail clusters stay small and extreme quantiles precise
(Dunning and Ertl, "Computing extremely accurate quantiles using t-digests", 2019). The result
depends only on the multiset of centroids given, so re-clustering is deterministic.

Quantiles interpolate linearly between centroid centres (the classic t-digest estimate, best
for continuous data), except that a centroid holding one repeated value is a point mass: it
keeps exactly its value over its whole rank range. Point masses of one value always join,
and a heavy one (at least half the weight one centroid may hold at its rank) never joins
another value. On tied data (days, counts, ratios of small integers) quantiles are then
values that occur, at the right rank: perf/bench_results.py measures rank error 0 on all
three sketched quantities of a large run.

Rank error, with the default compression (about 1000 centroids): on continuous data at most
1e-4 at p1-p99 (perf/bench_tdigest.py measures <= 3e-5 on 3M values; it also compares the
libraries we considered: fastdigest, crick, datasketches). Ties lighter than half a centroid
may still blend with a neighbouring value, and an estimate between the two is off by up to
half a centroid's weight: `tie_rank_error_bound()`, pi / (2 * compression) at the median,
8e-4 by default. No digest gives the same answer whatever the merge order;
`engine.stats.tree` fixes the order.
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
    """A digest as stored: centroid arrays as little-endian float64 bytes."""

    compression: float
    count: float
    means: bytes
    weights: bytes
    lows: bytes
    highs: bytes


class TDigest:
    """Mergeable quantile sketch. Build with `from_values` or `from_counts`, combine with `merge`."""

    __slots__ = ("compression", "count", "highs", "lows", "means", "weights")

    def __init__(self, compression: float = DEFAULT_COMPRESSION) -> None:
        self.compression = float(compression)
        self.means = np.empty(0)
        self.weights = np.empty(0)
        self.lows = np.empty(0)
        self.highs = np.empty(0)
        self.count = 0.0

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike, compression: float = DEFAULT_COMPRESSION
    ) -> TDigest:
        """A digest of `values`."""
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
            digest._absorb(values, counts, values, values)
        return digest

    def add(self, values: npt.ArrayLike) -> None:
        """Add values (each of weight 1)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if len(values) == 0:
            return
        _check_finite(values)
        self._absorb(values, np.ones(len(values)), values, values)

    def merge(self, others: Iterable[TDigest]) -> TDigest:
        """A new digest of this one and `others`; the inputs are not changed."""
        merged = TDigest(self.compression)
        parts = [self, *others]
        if any(len(part.means) for part in parts):
            merged._absorb(
                np.concatenate([part.means for part in parts]),
                np.concatenate([part.weights for part in parts]),
                np.concatenate([part.lows for part in parts]),
                np.concatenate([part.highs for part in parts]),
            )
        return merged

    @property
    def min(self) -> float:
        """Smallest value added (exact)."""
        return float(self.lows[0]) if self.count else math.inf

    @property
    def max(self) -> float:
        """Largest value added (exact)."""
        return float(self.highs[-1]) if self.count else -math.inf

    def tie_rank_error_bound(self) -> float:
        """Worst rank error when values are tied but not identical: half the largest centroid
        the k1 scale allows (pi / compression wide at the median)."""
        return math.pi / (2 * self.compression)

    @property
    def centroid_count(self) -> int:
        """Centroids held."""
        return len(self.means)

    def quantile(self, q: float | npt.ArrayLike) -> float | np.ndarray:
        """Estimated value below which a fraction `q` of the values lie (q in [0, 1])."""
        qs = np.asarray(q, dtype=np.float64)
        if self.count == 0:
            raise ValueError("quantile of an empty t-digest")
        if ((qs < 0) | (qs > 1)).any():
            raise ValueError(f"quantiles must be within [0, 1], got {q}")
        values, ranks = self._knots()
        result = np.interp(qs * self.count, ranks, values)
        return float(result) if np.ndim(q) == 0 else result

    def cdf(self, value: float) -> float:
        """Estimated fraction of the values at or below `value`."""
        if self.count == 0:
            raise ValueError("cdf of an empty t-digest")
        if value < self.min:
            return 0.0
        if value >= self.max:
            return 1.0
        values, ranks = self._knots()
        # The highest rank at `value`: a point mass there counts in full.
        position = np.searchsorted(values, value, side="right")
        if position and values[position - 1] == value:
            return float(ranks[position - 1]) / self.count
        return float(np.interp(value, values, ranks)) / self.count

    def state(self) -> DigestState:
        """The digest as a serialisable struct."""
        return DigestState(
            compression=self.compression,
            count=self.count,
            means=self.means.astype("<f8").tobytes(),
            weights=self.weights.astype("<f8").tobytes(),
            lows=self.lows.astype("<f8").tobytes(),
            highs=self.highs.astype("<f8").tobytes(),
        )

    @classmethod
    def from_state(cls, state: DigestState) -> TDigest:
        """Rebuild a digest from `state()`."""
        digest = cls(state.compression)
        digest.means = np.frombuffer(state.means, dtype="<f8").copy()
        digest.weights = np.frombuffer(state.weights, dtype="<f8").copy()
        digest.lows = np.frombuffer(state.lows, dtype="<f8").copy()
        digest.highs = np.frombuffer(state.highs, dtype="<f8").copy()
        digest.count = state.count
        return digest

    def _absorb(
        self, means: np.ndarray, weights: np.ndarray, lows: np.ndarray, highs: np.ndarray
    ) -> None:
        means = np.concatenate([self.means, means])
        weights = np.concatenate([self.weights, weights])
        lows = np.concatenate([self.lows, lows])
        highs = np.concatenate([self.highs, highs])
        order = np.lexsort((highs, lows, means))  # a total order: ties always cluster alike
        means, weights, lows, highs = means[order], weights[order], lows[order], highs[order]
        total = float(weights.sum())
        midpoint = (np.cumsum(weights) - weights / 2) / total
        scale = self.compression / (2 * math.pi)
        cluster = np.floor(scale * np.arcsin(np.clip(2 * midpoint - 1, -1.0, 1.0)))
        # Point masses of one value always join (the centroid stays a point mass, exact), and
        # a heavy one never joins another value, so a quantile landing on it is that value,
        # not a blend with its neighbours. A heavy one spans at least half a unit of k, so at
        # most `compression` of them exist and the digest stays bounded.
        point = lows == highs
        same_value = point[1:] & point[:-1] & (means[1:] == means[:-1])
        run_starts = np.flatnonzero(np.concatenate(([True], ~same_value)))
        run_weights = np.add.reduceat(weights, run_starts)
        run_of = np.cumsum(np.concatenate(([True], ~same_value))) - 1
        # "Heavy": at least half the weight the k1 scale lets one centroid hold there.
        run_end = np.cumsum(run_weights)
        run_mid = (run_end - run_weights / 2) / total
        allowed = total * (2 * math.pi / self.compression) * np.sqrt(run_mid * (1 - run_mid))
        heavy = point & (run_weights >= allowed / 2)[run_of]
        boundary = np.diff(cluster, prepend=-math.inf) != 0
        boundary[1:] |= (heavy[1:] | heavy[:-1]) & ~same_value
        boundary[1:] &= ~same_value
        starts = np.flatnonzero(boundary)
        merged_weights = np.add.reduceat(weights, starts)
        self.weights = merged_weights
        self.lows = np.minimum.reduceat(lows, starts)
        self.highs = np.maximum.reduceat(highs, starts)
        # A point mass's mean is its value exactly (a weighted average may be off by an ulp,
        # and an estimate a hair off a tied value is a whole tie's rank away from it).
        means = np.add.reduceat(means * weights, starts) / merged_weights
        self.means = np.where(self.lows == self.highs, self.lows, means)
        self.count = total

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, rank) points of the estimated distribution, values non-decreasing.

        A spread centroid is one knot at its mean and centre rank; a point mass is two knots
        at its value, at the ranks where its weight starts and ends.
        """
        ends = np.cumsum(self.weights)
        starts = ends - self.weights
        point = self.lows == self.highs
        first = np.where(point, starts, starts + self.weights / 2)
        last = np.where(point, ends, starts + self.weights / 2)
        centres = np.where(point, self.lows, self.means)
        values = np.concatenate(([self.min], np.repeat(centres, 2), [self.max]))
        ranks = np.concatenate(([0.0], np.column_stack((first, last)).ravel(), [self.count]))
        return values, ranks


def _check_finite(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise ValueError("a t-digest holds finite values only (no NaN or infinity)")
