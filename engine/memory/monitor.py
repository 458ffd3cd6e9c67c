"""Memory of a run's whole process tree against the real limit, as a green/yellow/red level.

The run's processes are the supervisor and its descendants (workers, writer); their resident
memory is summed. Pages shared between them (the channel's slots) count once per process that
touched them, so the sum errs on the safe side.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from engine.errors import MemoryBudgetError, ParameterError
from engine.memory.limits import MemoryLimit, SystemProbe, detect_memory_limit

__all__ = ["MemoryLevel", "MemoryMonitor", "MemorySnapshot", "Thresholds"]


class MemoryLevel(enum.StrEnum):
    """green: carry on; yellow: stop taking on work; red: shrink the work in hand."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True)
class Thresholds:
    """Fractions of the limit where yellow and red begin (defaults: 70 % and 85 %)."""

    yellow: float = 0.70
    red: float = 0.85

    def __post_init__(self) -> None:
        if not 0 < self.yellow < self.red <= 1:
            raise ParameterError(
                f"memory thresholds must satisfy 0 < yellow < red <= 1, got "
                f"yellow={self.yellow}, red={self.red}"
            )

    def level(self, fraction: float) -> MemoryLevel:
        """The level of a use of `fraction` of the limit."""
        if fraction > self.red:
            return MemoryLevel.RED
        if fraction >= self.yellow:
            return MemoryLevel.YELLOW
        return MemoryLevel.GREEN


@dataclass(frozen=True)
class MemorySnapshot:
    """One measurement: the tree's resident bytes (total and by pid) against the limit."""

    usage_bytes: int
    by_pid: dict[int, int]
    limit: MemoryLimit
    level: MemoryLevel

    @property
    def fraction(self) -> float:
        return self.usage_bytes / self.limit.bytes


class MemoryMonitor:
    """Measures the process tree rooted at `root_pid` (default: this process).

    The limit is found once (`refresh_limit()` finds it again); `probe` replaces the
    machine in tests.
    """

    def __init__(
        self,
        root_pid: int | None = None,
        probe: SystemProbe | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.root_pid = os.getpid() if root_pid is None else root_pid
        self.probe = probe or SystemProbe()
        self.thresholds = thresholds or Thresholds()
        self.limit = detect_memory_limit(self.probe)

    def refresh_limit(self) -> MemoryLimit:
        """Look for the limit again (a cgroup can be changed while we run)."""
        self.limit = detect_memory_limit(self.probe)
        return self.limit

    def snapshot(self) -> MemorySnapshot:
        """Measure the tree now."""
        by_pid = self.probe.tree_rss(self.root_pid)
        usage = sum(by_pid.values())
        level = self.thresholds.level(usage / self.limit.bytes)
        return MemorySnapshot(usage_bytes=usage, by_pid=by_pid, limit=self.limit, level=level)

    def headroom_bytes(self) -> int:
        """Bytes this tree may still allocate: what is left under the real limit (RAM,
        cgroup or rlimit, less what the tree uses now), and never more than the machine
        still has available for everyone."""
        left_under_limit = self.limit.bytes - self.snapshot().usage_bytes
        return max(0, min(left_under_limit, self.probe.available_bytes()))

    def get_memory_usage_mb(self) -> float:
        """Resident memory of the whole tree, MiB."""
        return self.snapshot().usage_bytes / 2**20

    def get_memory_percentage(self) -> float:
        """Resident memory of the whole tree as a percentage of the limit."""
        return 100.0 * self.snapshot().fraction

    def level(self) -> MemoryLevel:
        """The tree's level now."""
        return self.snapshot().level

    def require(self, estimate_bytes: int, operation: str) -> MemorySnapshot:
        """Raise `MemoryBudgetError` if `operation`, needing `estimate_bytes` more, would
        take the tree into red; else return the measurement it was judged on."""
        now = self.snapshot()
        after = now.usage_bytes + max(0, estimate_bytes)
        if after / self.limit.bytes <= self.thresholds.red:
            return now
        raise MemoryBudgetError(
            f"{operation} needs about {_mib(estimate_bytes)} more memory, but this process "
            f"tree already uses {_mib(now.usage_bytes)} of a {self.limit.describe()} limit: "
            f"{100 * after / self.limit.bytes:.0f} % would cross the "
            f"{100 * self.thresholds.red:.0f} % red level. Use fewer workers (--workers), "
            f"smaller batches or shards (--shard-size), or keep results on disk "
            f"(runs above 1,000 patients stream to Parquet)"
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"
