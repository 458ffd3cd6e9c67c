"""A cluster run's metrics: the same `MetricsSample` stream as a local run's.

Built by the client from task completions (shards, patients, visits, rates, ETA, through
`engine.pipeline.sampling`) and from the Dask workers' resident memory as their heartbeats
report it to the scheduler (asked at most once a second); the client's own process is the
"supervisor" of the sample.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from engine.memory.monitor import MemoryMonitor
from engine.pipeline.assignment import ShardProgress
from engine.pipeline.sampling import SampleRecorder
from ipc.messages import MetricsSample, ProcessMemory

__all__ = ["ClusterSampler", "scheduler_address", "scheduler_info", "worker_memory"]

WORKER_INFO_INTERVAL_S = 1.0


class ClusterSampler:
    """Samples of one cluster run."""

    def __init__(self, client: Any, recorder: SampleRecorder) -> None:
        self.client = client
        self.recorder = recorder
        self.monitor = MemoryMonitor(root_pid=os.getpid())
        self._workers: list[ProcessMemory] = []
        self._next_worker_info = 0.0

    def sample(self, status: str, progress: ShardProgress, batch_shards: int) -> MetricsSample:
        """A sample of the run now (also the recorder's latest)."""
        memory = self.monitor.snapshot()
        if time.monotonic() >= self._next_worker_info:
            self._workers = worker_memory(self.client)
            self._next_worker_info = time.monotonic() + WORKER_INFO_INTERVAL_S
        client = ProcessMemory(
            role="supervisor", pid=os.getpid(), rss_bytes=memory.by_pid.get(os.getpid(), 0)
        )
        return self.recorder.sample(
            status=status,
            progress=progress,
            channel_slots=0,
            channel=None,
            memory=memory,
            processes=[client, *self._workers],
            paused=False,
            batch_shards=batch_shards,
        )


def scheduler_address(client: Any) -> str:
    """The address of the client's scheduler ("" if it does not say)."""
    with contextlib.suppress(Exception):
        return str(client.scheduler.address)
    return ""


def scheduler_info(client: Any) -> dict[str, Any]:
    """The scheduler's view of every worker (newer Dask lists only five unless asked)."""
    try:
        return dict(client.scheduler_info(n_workers=-1))
    except TypeError:  # an older Dask without the argument lists them all
        return dict(client.scheduler_info())


def worker_memory(client: Any) -> list[ProcessMemory]:
    """Each Dask worker's resident memory as its last heartbeat reported it."""
    with contextlib.suppress(Exception):
        workers = scheduler_info(client).get("workers", {})
        return [
            ProcessMemory(
                role="dask-worker",
                pid=int(worker.get("pid", 0)),
                rss_bytes=int(worker.get("metrics", {}).get("memory", 0)),
            )
            for worker in workers.values()
        ]
    return []
