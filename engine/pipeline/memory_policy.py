"""What a streaming run does about memory: refuse a run that will not fit, and throttle one
that is getting close.

Before the start, the run's estimate (`engine.memory.estimate`) must fit beside what the
process tree already uses, and its files on the disk (a resume needs room only for what is
not written yet). While it runs, each metrics sample feeds the memory level in: yellow or red
hands out no new shards while any are in hand (one task always runs, so the run never
stalls); red also halves the shards per task, for good; back to green hands out work again.

Does not cover: measuring (`engine.memory.monitor`), a worker's own `MemoryError` (it halves
its batch and retries, `engine.pipeline.worker`).
"""

from __future__ import annotations

import dataclasses
import logging

from engine.memory.estimate import RunEstimate, check_run_fits, estimate_run
from engine.memory.monitor import MemoryLevel, MemoryMonitor
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters
from engine.pipeline.options import PipelineOptions
from engine.run_dir import RunPaths

__all__ = ["MemoryPolicy", "check_resources"]

log = logging.getLogger(__name__)


class MemoryPolicy:
    """The run's memory level and the throttling it calls for.

    `events` counts what happened, for the run's report: pauses, batch reductions, and the
    `MemoryError`s workers reported.
    """

    def __init__(self, batch_limit: int) -> None:
        self.level = MemoryLevel.GREEN
        self.batch_limit = batch_limit  # most shards per task; halved at red
        self.events = {"pauses": 0, "batch_reductions": 0, "worker_memory_errors": 0}

    @property
    def paused(self) -> bool:
        """True while no new shards may be handed out if any are in hand."""
        return self.level is not MemoryLevel.GREEN

    def react(self, level: MemoryLevel) -> bool:
        """Take the latest level in; True when it ends a pause (hand out work to every idle
        worker again)."""
        was_paused = self.paused
        self.level = level
        if level is MemoryLevel.RED and self.batch_limit > 1:
            self.batch_limit //= 2
            self.events["batch_reductions"] += 1
            log.warning("memory is red: at most %d shards per task from now on", self.batch_limit)
        if self.paused and not was_paused:
            self.events["pauses"] += 1
            log.warning("memory is %s: handing out no new shards until it drops", level)
        elif was_paused and not self.paused:
            log.info("memory is green again: handing out shards")
            return True
        return False


def check_resources(
    protocol: AnyProtocol,
    params: RunParameters,
    options: PipelineOptions,
    paths: RunPaths,
    monitor: MemoryMonitor,
    resuming: bool,
) -> tuple[RunEstimate, int]:
    """Estimate the run's peak memory and disk use; refuse it when either does not fit.

    Returns the estimate and the tree's resident bytes it was judged against. Raises
    `MemoryBudgetError` or `DiskSpaceError`. A resume needs disk only for what is not
    written yet.
    """
    full = estimate_run(protocol, params, options)
    estimate = full
    if resuming and paths.root.is_dir():
        already = paths.bytes_on_disk()
        estimate = dataclasses.replace(estimate, disk_bytes=max(0, estimate.disk_bytes - already))
    memory_at_start = check_run_fits(
        estimate, monitor, paths.root, options.free_disk_bytes
    ).usage_bytes
    log.info("run estimate: %s", estimate.describe())
    return full, memory_at_start
