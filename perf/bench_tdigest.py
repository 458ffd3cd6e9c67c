"""Which t-digest: our numpy merging digest against the libraries, measured the way we use it.

Usage pattern of a run: one digest per 4096-patient shard, merged (many times) into the run's
digest. For each candidate this prints: rank error at p1, p5, p50, p95, p99 after merging
10M values shard by shard (against exact ranks, ties counted fairly), values/s for that whole
build, centroids kept, serialised bytes, and whether merging in another order gives the same
answer (our runs need that: statistics must not depend on the order shards arrive in).

    python perf/bench_tdigest.py [--values 10000000] [--compression 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.stats.tdigest import TDigest  # noqa: E402

QUANTILES = np.array([0.01, 0.05, 0.5, 0.95, 0.99])
SHARD = 4096


def rank_error(sorted_values: np.ndarray, estimates: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Distance from q to the range of ranks the estimate occupies (0 if q is inside it)."""
    n = len(sorted_values)
    low = np.searchsorted(sorted_values, estimates, side="left") / n
    high = np.searchsorted(sorted_values, estimates, side="right") / n
    return np.maximum(0.0, np.maximum(low - qs, qs - high))


def ours(
    shards: list[np.ndarray], compression: float, reverse: bool = False
) -> tuple[object, callable, int, int]:
    digests = [TDigest.from_values(s, compression) for s in shards]
    if reverse:
        digests = digests[::-1]
    total = digests[0]
    for digest in digests[1:]:
        total = total.merge([digest])
    from msgspec import msgpack

    return (
        total,
        total.quantile,
        total.centroid_count,
        len(msgpack.encode(total.state())),
    )


def fastdigest_candidate(shards, compression, reverse=False):
    import fastdigest

    digests = [fastdigest.TDigest.from_values(s, max_centroids=int(compression)) for s in shards]
    if reverse:
        digests = digests[::-1]
    total = digests[0]
    for digest in digests[1:]:
        total = total.merge(digest)
    return (
        total,
        lambda q: np.array([total.quantile(x) for x in q]),
        total.n_centroids,
        len(total.to_bytes()),
    )


def crick_candidate(shards, compression, reverse=False):
    import pickle

    import crick

    digests = []
    for s in shards:
        digest = crick.TDigest(compression=compression)
        digest.update(s)
        digests.append(digest)
    if reverse:
        digests = digests[::-1]
    total = crick.TDigest(compression=compression)
    total.merge(*digests)
    return total, total.quantile, len(total.centroids()), len(pickle.dumps(total))


def datasketches_candidate(shards, compression, reverse=False):
    import datasketches

    digests = []
    for s in shards:
        digest = datasketches.tdigest_double(int(compression))
        for value in s.tolist():
            digest.update(value)
        digests.append(digest)
    if reverse:
        digests = digests[::-1]
    total = datasketches.tdigest_double(int(compression))
    for digest in digests:
        total.merge(digest)
    return total, lambda q: np.array([total.get_quantile(x) for x in q]), -1, len(total.serialize())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--compression", type=float, default=2000)
    parser.add_argument(
        "--slow-values", type=int, default=1_000_000, help="for per-value candidates"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    # Skewed, like time to discontinuation or injections per year.
    values = rng.lognormal(mean=1.0, sigma=0.8, size=args.values)
    candidates = [
        ("numpy merging digest (ours)", ours, args.values),
        ("fastdigest (Rust)", fastdigest_candidate, args.values),
        ("crick (C, from dask)", crick_candidate, args.values),
        ("datasketches tdigest_double", datasketches_candidate, args.slow_values),
    ]
    print(f"bench_tdigest: lognormal values in shards of {SHARD}, compression {args.compression:g}")
    print(
        f"  {'candidate':32s} {'values':>8s} {'M/s':>6s}  rank error at p1, p5, p50, p95, p99        "
        "centroids   bytes  order-free"
    )
    for name, build, n in candidates:
        data = values[:n]
        shards = [data[i : i + SHARD] for i in range(0, n, SHARD)]
        try:
            started = time.perf_counter()
            _, quantile, centroids, size = build(shards, args.compression)
            elapsed = time.perf_counter() - started
        except ImportError:
            print(f"  {name:32s} not installed")
            continue
        errors = rank_error(np.sort(data), np.asarray(quantile(QUANTILES)), QUANTILES)
        _, reverse_quantile, _, _ = build(shards, args.compression, reverse=True)
        same = np.array_equal(
            np.asarray(quantile(QUANTILES)), np.asarray(reverse_quantile(QUANTILES))
        )
        shown = ", ".join(f"{e:.1e}" for e in errors)
        print(
            f"  {name:32s} {n / 1e6:6.0f}M {n / elapsed / 1e6:6.1f}  {shown}  {centroids:9d} {size:7d}  {same}"
        )


if __name__ == "__main__":
    main()
