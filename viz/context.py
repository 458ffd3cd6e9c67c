"""What every session of one dashboard server shares, and what each session owns.

Shared: the runs root, the comparisons root (read only), the launcher of run processes, the live-run watches and the
operation timings. Per session: a `StateManager` holding the results it has opened.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import RunNotFoundError
from engine.memory import MemoryMonitor
from engine.registry import Registry
from engine.small_runs import entry_location
from viz.compare_launcher import ComparisonLauncher
from viz.launcher import Launcher
from viz.live import LiveRuns
from viz.recent_memory_runs import RecentMemoryRuns

__all__ = ["ServerContext", "Timings"]


class Timings:
    """Count, mean and max duration of named operations (open results, patient lookup, ...)."""

    def __init__(self) -> None:
        self._totals: dict[str, list[float]] = {}  # name -> [count, total_s, max_s]
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - started)

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            entry = self._totals.setdefault(name, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds
            entry[2] = max(entry[2], seconds)

    def rows(self) -> list[dict[str, object]]:
        """One row per operation: name, count, mean_ms, max_ms."""
        with self._lock:
            return [
                {"operation": name, "count": int(c), "mean_ms": 1000 * t / c, "max_ms": 1000 * m}
                for name, (c, t, m) in sorted(self._totals.items())
            ]


@dataclass
class ServerContext:
    """Shared by all sessions of one dashboard server."""

    runs_root: Path
    protocols_dir: Path | None = None
    comparisons_root: Path | None = None  # default: "comparisons" beside the runs root
    max_upload_bytes: int = 256 << 10
    refresh_ms: int = 500
    launcher: Launcher = field(init=False)
    comparison_launcher: ComparisonLauncher = field(init=False)
    live: LiveRuns = field(default_factory=LiveRuns)
    timings: Timings = field(default_factory=Timings)
    monitor: MemoryMonitor = field(default_factory=MemoryMonitor)
    sessions: int = 0
    deleted_runs: set[str] = field(default_factory=set)  # by a session: the others say so
    # In-memory runs of the Run page, off the event loop (`viz.small_run`); two at a time.
    small_runs: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="amdsim-small-run")
    )
    # The server's recent in-memory runs (`viz.recent_memory_runs`): they outlive the session
    # that made them, for a reload, another session and downloads.
    memory_results: RecentMemoryRuns = field(default_factory=RecentMemoryRuns)

    def __post_init__(self) -> None:
        self.runs_root = Path(self.runs_root)
        self.runs_root.mkdir(parents=True, exist_ok=True)
        if self.comparisons_root is None:  # where `amdsim compare` writes, run from there
            self.comparisons_root = self.runs_root.parent / "comparisons"
        self.comparisons_root = Path(self.comparisons_root)
        self.launcher = Launcher(self.runs_root, self.live)
        self.comparison_launcher = ComparisonLauncher(self.comparisons_root)

    def registry(self) -> Registry:
        return Registry(self.runs_root)

    def results_location(self, key: str) -> Path:
        """Where a run's results are: its run directory, or the folder a small run was
        saved to; `entry_location` says why an unsaved small run has none."""
        registry = self.registry()
        try:
            entry = registry.get(key)
        except RunNotFoundError:  # not listed (yet): its directory, if there is one
            return self.runs_root / key
        return entry_location(registry, entry)
