"""What a run directory says about the run as a whole, for a reader: manifest and statistics.

Statistics come from ``stats.json`` once the run has finished, else from the checkpoint's
running state, else (nothing written yet) empty; so summaries never scan rows.
Does not cover: the rows (`engine.results.parquet`), writing either file (`engine.pipeline`).
"""

from __future__ import annotations

from engine.errors import RunNotFoundError
from engine.formats import decode_versioned
from engine.manifest import Checkpoint, Manifest, read_manifest
from engine.run_dir import RunPaths
from engine.stats.run_stats import (
    STATS_FORMAT_VERSION,
    STATS_UPGRADES,
    RunStatistics,
    RunStatisticsState,
    StatsAccumulator,
)

__all__ = ["read_run_manifest", "read_run_statistics"]


def read_run_manifest(paths: RunPaths) -> Manifest:
    """The run's manifest; `RunNotFoundError` if the directory has none (not a run)."""
    if not paths.manifest.is_file():
        raise RunNotFoundError(f"{paths.root} is not a run directory (no manifest.json)")
    return read_manifest(paths.manifest)


def read_run_statistics(
    paths: RunPaths, manifest: Manifest, checkpoint: Checkpoint
) -> RunStatistics:
    """The run's statistics: stats.json once finished, else the checkpoint's, else empty."""
    if paths.stats.is_file():
        state = decode_versioned(
            paths.stats.read_bytes(),
            RunStatisticsState,
            STATS_FORMAT_VERSION,
            STATS_UPGRADES,
            str(paths.stats),
            "statistics file",
        )
        return RunStatistics.from_state(state)
    if checkpoint.stats is not None:
        return StatsAccumulator.from_state(checkpoint.stats).result()
    params = manifest.parameters
    return StatsAccumulator(params.shard_count, params.horizon_days).result()
