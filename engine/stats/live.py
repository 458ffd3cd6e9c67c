"""Live statistics: the counts of every row a running run has written, for live charts.

The writer rewrites ``live-stats.msgpack`` (a `RunStatisticsState` without sketches, msgpack)
about once a second and removes it when stats.json is written. Readers get None when there
is none (the run has not written anything yet, or has finished: read stats.json then), and
when it holds no counts: a writer waiting for its first rows publishes an empty `Counts`,
which has none of the tables the charts read (``va_by_month``, ``totals``, ...).
"""

from __future__ import annotations

import os

import msgspec

from engine.run_dir import RunPaths, temporary_name
from engine.stats.run_stats import RunStatistics, RunStatisticsState
from engine.stats.shard_stats import Counts

__all__ = ["read_live_statistics", "write_live_statistics"]


def write_live_statistics(paths: RunPaths, counts: Counts, horizon_days: int, shards: int) -> None:
    """Replace the live statistics file in one step (rename; no fsync: it is disposable)."""
    state = RunStatisticsState(horizon_days=horizon_days, shards=shards, counts=counts.state())
    temporary = temporary_name(paths.live_stats)
    temporary.write_bytes(msgspec.msgpack.encode(state))
    os.replace(temporary, paths.live_stats)


def read_live_statistics(paths: RunPaths) -> RunStatistics | None:
    """The latest live statistics of a running run, or None if there are none (yet)."""
    try:
        data = paths.live_stats.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = msgspec.msgpack.decode(data, type=RunStatisticsState)
    except msgspec.DecodeError:
        return None  # a file from an incompatible version: nothing live to show
    if not state.counts.arrays:
        return None  # published before the first rows arrived: no counts to chart yet
    return RunStatistics.from_state(state)
