"""The run's metrics: one `MetricsSample` per interval, and the peaks the report shows.

A sample is built from the supervisor's counts (shards and rows written, what a resume
started from), the channel's statistics and one memory measurement of the process tree,
split by role (supervisor, workers, writer). Rates count only what this process simulated,
so a resumed run's ETA is not flattered by the rows it found on disk.

The ETA divides the patients left by the recent rate (`RecentRate`), not by the whole-run
average: start-up (spawning workers, compiling the model, the first shards in flight)
produces no patients, so an average over the whole run underestimates the steady rate for
minutes and made the ETA about twice too long. A stopped run has no ETA.

Does not cover: sending samples (`ipc.metrics.MetricsPublisher`), reacting to the memory
level (`engine.pipeline.memory_policy`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.memory.monitor import MemorySnapshot
from engine.model.parameters import RunParameters
from engine.pipeline.assignment import ShardProgress
from ipc.channel import ChannelStatistics
from ipc.messages import MetricsSample, ProcessMemory, StageTimes

__all__ = ["RecentRate", "SampleRecorder", "process_memory"]

RATE_TIME_CONSTANT_S = 5.0  # 86 % of the recent rate's weight is on the last 10 s


@dataclass
class RecentRate:
    """A count's rate per second over roughly the last ``2 * time_constant_s`` seconds.

    An exponentially weighted moving average of the rate between successive updates,
    weighted by the time each interval covers (so irregular updates are fine). The average
    starts at 0 and is divided by the total weight so far, so the first updates are not
    biased towards 0; an interval's weight halves every ``0.69 * time_constant_s`` seconds.
    """

    time_constant_s: float = RATE_TIME_CONSTANT_S
    _time: float | None = None
    _count: int = 0
    _average: float = 0.0
    _weight: float = 0.0  # 1 - prod(1 - alpha): how much of the average is not the 0 it began at

    def start(self, time_s: float, count: int) -> None:
        """The point the first interval is measured from."""
        self._time, self._count = time_s, count

    def update(self, time_s: float, count: int) -> float:
        """Add the interval since the previous update (or `start`); the rate now."""
        if self._time is None:
            self.start(time_s, count)
            return self.per_s
        elapsed = time_s - self._time
        if elapsed <= 0:
            return self.per_s
        alpha = 1.0 - math.exp(-elapsed / self.time_constant_s)
        self._average += alpha * ((count - self._count) / elapsed - self._average)
        self._weight += alpha * (1.0 - self._weight)
        self._time, self._count = time_s, count
        return self.per_s

    @property
    def started(self) -> bool:
        """Whether there is a point to measure the next interval from."""
        return self._time is not None

    @property
    def per_s(self) -> float:
        """The recent rate; 0 before the first interval."""
        return self._average / self._weight if self._weight > 0 else 0.0


@dataclass
class SampleRecorder:
    """Builds samples for one run and keeps the latest one and the peaks of resident memory."""

    run_id: str
    params: RunParameters
    started_at: float | None = None  # default: `clock()` when the recorder is made
    resumed_patients: int = 0  # already on disk when this process started the run
    resumed_visits: int = 0
    clock: Callable[[], float] = time.monotonic  # injectable, for tests
    recent: RecentRate = field(default_factory=RecentRate)
    latest: MetricsSample | None = None
    peak_rss_total: int = 0
    peak_rss_by_role: dict[str, int] = field(default_factory=dict)
    # The latest stage timings of each worker and writer thread, by name, as they arrive.
    stage_times: dict[str, StageTimes] = field(default_factory=dict)

    def record_stages(self, times: list[StageTimes]) -> None:
        """Keep a process's latest stage timings (a later report replaces an earlier one)."""
        for entry in times:
            self.stage_times[entry.name] = entry

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = self.clock()

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
        now = self.clock()
        assert self.started_at is not None  # set by __post_init__
        elapsed = now - self.started_at
        if not self.recent.started:  # measured from the start: start-up counts as 0/s
            self.recent.start(self.started_at, self.resumed_patients)
        recent_per_s = self.recent.update(now, progress.patients)
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
            eta_s=remaining / recent_per_s if recent_per_s > 0 and status == "running" else None,
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
            recent_patients_per_s=recent_per_s,
            stages=list(self.stage_times.values()),
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
