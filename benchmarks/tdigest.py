"""The numpy merging t-digest (engine.stats.tdigest), used as a run uses it.

A run builds one digest per 4096-patient shard and merges them into the run's digest;
`perf/bench_tdigest.py` does this for 10M values against other libraries. Values here are
lognormal (skewed, like time to discontinuation), 256 shards (about 1M values).
"""

from __future__ import annotations

import numpy as np

from engine.stats.tdigest import DEFAULT_COMPRESSION, TDigest

SHARD = 4096
SHARDS = 256
QUANTILES = np.array([0.01, 0.05, 0.5, 0.95, 0.99])


class TDigestBuild:
    """Building, merging, querying and serialising digests at the default compression."""

    def setup_cache(self) -> tuple[np.ndarray, list[TDigest], TDigest]:
        rng = np.random.default_rng(7)
        values = rng.lognormal(mean=1.0, sigma=0.8, size=SHARD * SHARDS)
        digests = [TDigest.from_values(values[i : i + SHARD]) for i in range(0, len(values), SHARD)]
        return values, digests, digests[0].merge(digests[1:])

    def setup(self, cached: tuple[np.ndarray, list[TDigest], TDigest]) -> None:
        values, self.digests, self.merged = cached
        self.shards = [values[i : i + SHARD] for i in range(0, len(values), SHARD)]

    def time_from_values_one_shard(self, cached) -> None:
        """One shard's digest from its 4096 values (what a worker does per quantity)."""
        TDigest.from_values(self.shards[0], DEFAULT_COMPRESSION)

    def time_merge_pairwise(self, cached) -> None:
        """256 shard digests merged one at a time into a running total."""
        total = self.digests[0]
        for digest in self.digests[1:]:
            total = total.merge([digest])

    def time_merge_all_at_once(self, cached) -> None:
        """256 shard digests merged in one call."""
        self.digests[0].merge(self.digests[1:])

    def time_quantiles(self, cached) -> None:
        """p1, p5, p50, p95, p99 of the merged digest."""
        self.merged.quantile(QUANTILES)

    def time_state_round_trip(self, cached) -> None:
        """The merged digest to its stored form and back (checkpoints, stats.json)."""
        TDigest.from_state(self.merged.state())

    def track_centroids(self, cached) -> int:
        """Centroids the merged digest keeps (memory and stored size follow it)."""
        return self.merged.centroid_count

    track_centroids.unit = "centroids"
