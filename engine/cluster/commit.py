"""The client's side of a cluster run: accept task results, checkpoint, and end the run.

The client is the only one that commits. It accepts the first result for each block, adds
its files' statistics to the run's (counts add exactly, sketches merge in the fixed
shard-order tree, so the order tasks finish in does not matter), and writes `checkpoint.json`
listing exactly the accepted parts. At the end it writes `stats.json` and the final manifest,
as the local writer does. Files no checkpoint lists (an attempt that was given up, a
duplicate, a worker killed half-way) are removed when the run ends, and by a resume.

Does not cover: running tasks (`engine.cluster.run`), the task itself (`engine.cluster.task`).
"""

from __future__ import annotations

import contextlib
import time

from engine.cluster.task import BlockResult
from engine.manifest import (
    Checkpoint,
    Manifest,
    PartFile,
    ShardLocation,
    write_checkpoint,
    write_run_end,
)
from engine.pipeline.assignment import ShardProgress
from engine.run_dir import RunPaths
from engine.stats.live import write_live_statistics
from engine.stats.run_stats import StatsAccumulator
from engine.stats.shard_stats import Counts, Sketches
from ipc.messages import ShardWritten

__all__ = ["ClusterCommit"]

CHECKPOINT_INTERVAL_S = 1.0  # at most this often while tasks finish; always at the end


class ClusterCommit:
    """Accepted parts, their statistics and the run's checkpoint."""

    def __init__(
        self,
        paths: RunPaths,
        manifest: Manifest,
        progress: ShardProgress,
        checkpoint: Checkpoint | None,
    ) -> None:
        self.paths = paths
        self.manifest = manifest
        self.progress = progress
        params = manifest.parameters
        self.parts: list[PartFile] = []
        self.locations: list[ShardLocation] = []
        self.stats = StatsAccumulator(params.shard_count, params.horizon_days)
        self.uncompressed_bytes = 0
        if checkpoint is not None:
            self.parts = list(checkpoint.parts)
            self.locations = list(checkpoint.shards)
            if checkpoint.stats is not None:
                self.stats = StatsAccumulator.from_state(checkpoint.stats)
            self.uncompressed_bytes = checkpoint.uncompressed_bytes
        self.seconds = {"simulate": 0.0, "write": 0.0}
        self._next_checkpoint = 0.0
        self._dirty = False

    def accept(self, result: BlockResult) -> list[str]:
        """Add a task's files unless their shards are in already; the names refused.

        A refused result (its shards were accepted from another attempt) has its files
        removed at once; they are never listed.
        """
        if any(shard in self.progress.complete for shard in result.shards):
            return self._remove_files(result)
        for written in result.files:
            bytes_written = (
                self.progress.bytes_written
                + written.part.patients_bytes
                + written.part.visits_bytes
            )
            self.parts.append(written.part)
            self.locations.extend(written.locations)
            self.stats.add_counts(Counts.from_state(written.counts))
            for sketch in written.sketches:
                self.stats.add_sketches(
                    sketch.shard,
                    sketch.part,
                    sketch.part_count,
                    Sketches.from_state(sketch.sketches),
                )
            for location in written.locations:
                self.progress.record(
                    ShardWritten(
                        shard=location.shard,
                        part=location.part,
                        part_count=location.part_count,
                        patients=location.patients,
                        visits=location.visits,
                        bytes_written=bytes_written,
                    )
                )
        self.uncompressed_bytes += result.uncompressed_bytes
        self.seconds["simulate"] += result.simulate_s
        self.seconds["write"] += result.write_s
        self._dirty = True
        if time.monotonic() >= self._next_checkpoint:
            self.checkpoint()
        return []

    def checkpoint(self) -> None:
        """Write the checkpoint now if anything was accepted since the last one."""
        if not self._dirty:
            return
        write_checkpoint(
            self.paths.checkpoint,
            Checkpoint(
                format_version=self.manifest.format_version,
                run_id=self.manifest.run_id,
                parts=sorted(self.parts, key=lambda p: p.number),
                shards=self.locations,
                stats=self.stats.state(),
                uncompressed_bytes=self.uncompressed_bytes,
            ),
        )
        self._dirty = False
        self._next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
        # The counts so far, for dashboards to chart while the run goes (as the writer does).
        write_live_statistics(
            self.paths,
            self.stats.counts,
            self.manifest.parameters.horizon_days,
            len(self.progress.complete),
        )

    def remove_unlisted(self) -> list[str]:
        """Remove temporaries and part files the accepted parts do not include."""
        listed = {name for part in self.parts for name in (part.patients_file, part.visits_file)}
        doomed = list(self.paths.temporary_files())
        for table in ("patients", "visits"):
            doomed += [p for p in self.paths.part_files(table) if p.name not in listed]
        removed = []
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path.name)
        return removed

    def finish(self, status: str, error: str = "") -> Manifest:
        """Write the last checkpoint, `stats.json` and the final manifest (as the writer does)."""
        self._dirty = True
        self.checkpoint()
        manifest = write_run_end(
            self.paths, self.manifest, self.stats.result(), status, error, self.uncompressed_bytes
        )
        self.manifest = manifest
        return manifest

    def _remove_files(self, result: BlockResult) -> list[str]:
        names = []
        for written in result.files:
            for table, name in (
                ("patients", written.part.patients_file),
                ("visits", written.part.visits_file),
            ):
                with contextlib.suppress(FileNotFoundError):
                    (self.paths.table_dir(table) / name).unlink()
                names.append(name)
        return names
