"""The run's metrics: one `MetricsSample` per interval, and the peaks the report shows.

A sample is built from the supervisor's counts (shards and rows written, what a resume
started from), the channel's statistics and one memory measurement of the process tree,
split by role (supervisor, workers, writer). Rates count only what this process simulated,
so a resumed run's ETA is not flattered by the rows it found on disk.

Does not cover: sending samples (`ipc.metrics.MetricsPublisher`), reacting to the memory
level (`engine.pipeline.memory_policy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.memory.monitor import MemorySnapshot
from engine.model.parameters import RunParameters
from engine.pipeline.assignment import ShardProgress
from ipc.channel import ChannelStatistics
from ipc.messages import MetricsSample, ProcessMemory

__all__ = ["SampleRecorder", "process_memory"]


@dataclass
class SampleRecorder:
    """Builds samples for one run and keeps the latest one and the peaks of resident memory."""

    run_id: str
    params: RunParameters
    started_at: float = field(default_factory=time.monotonic)
    resumed_patients: int = 0  # already on disk when this process started the run
    resumed_visits: int = 0
    latest: MetricsSample | None = None
    peak_rss_total: int = 0
    peak_rss_by_role: dict[str, int] = field(default_factory=dict)

    def sample(
        self,
        *,
        status: str,
        progress: ShardProgress,
        channel_slots: int,
        channel: ChannelStatistics | None,
        memory: MemorySnapshot,
        processes: list[ProcessMemory],
        paused: bool,
        batch_shards: int,
    ) -> MetricsSample:
        """A sample of the run now; also becomes `latest` and feeds the peaks."""
        elapsed = time.monotonic() - self.started_at
        patients_now = progress.patients - self.resumed_patients  # simulated by this process
        patients_per_s = patients_now / elapsed if elapsed > 0 else 0.0
        visits_per_s = (progress.visits - self.resumed_visits) / elapsed if elapsed > 0 else 0.0
        remaining = self.params.n_patients - progress.patients
        sample = MetricsSample(
            run_id=self.run_id,
            time=time.time(),
            elapsed_s=elapsed,
            status=status,  # type: ignore[arg-type]
            shards_done=len(progress.complete),
            shards_total=self.params.shard_count,
            patients_done=progress.patients,
            patients_total=self.params.n_patients,
            visits_written=progress.visits,
            patients_per_s=patients_per_s,
            visits_per_s=visits_per_s,
            eta_s=remaining / patients_per_s if patients_per_s > 0 else None,
            processes=processes,
            channel_slots=channel_slots,
            channel_in_use=channel.in_use if channel else 0,
            channel_peak=channel.peak_in_use if channel else 0,
            bytes_written=progress.bytes_written,
            memory_used_bytes=memory.usage_bytes,
            memory_limit_bytes=memory.limit.bytes,
            memory_limit_source=memory.limit.source,
            memory_level=memory.level.value,
            paused=paused,
            batch_shards=batch_shards,
        )
        self.latest = sample
        self.peak_rss_total = max(self.peak_rss_total, sample.rss_total_bytes)
        for process in sample.processes:  # the largest single process of each role
            peak = self.peak_rss_by_role.get(process.role, 0)
            self.peak_rss_by_role[process.role] = max(peak, process.rss_bytes)
        return sample


def process_memory(snapshot: MemorySnapshot, roles: dict[int, str]) -> list[ProcessMemory]:
    """Resident memory of the run's processes (`roles`: pid -> role), from the tree's measurement."""
    return [
        ProcessMemory(role=role, pid=pid, rss_bytes=snapshot.by_pid[pid])
        for pid, role in roles.items()
        if snapshot.by_pid.get(pid)  # an exited, not yet reaped process reports 0
    ]
