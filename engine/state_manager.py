"""What a session (a dashboard tab, a notebook) holds: results objects, their sizes, and
least-recently-used eviction when there are too many or they take too much memory.

Objects are closed when evicted or released. Python frees cyclic garbage lazily; after a run
completes, before a new one starts and when memory turns red, `gc.collect()` runs so that
what was released is returned before the next large allocation.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import MemoryBudgetError, ParameterError
from engine.memory.monitor import MemoryLevel, MemoryMonitor
from engine.results.base import SimulationResults

__all__ = ["HeldResults", "StateManager"]

DEFAULT_MAX_ITEMS = 8
DEFAULT_MAX_BYTES = 512 << 20


@dataclass
class HeldResults:
    """One results object a session holds, with what it is judged by."""

    key: str
    results: SimulationResults
    size_bytes: int


class StateManager:
    """Results objects by key, at most `max_items` of them and `max_bytes` in total.

    Thread-safe: a dashboard serves each session's callbacks on threads. `monitor` is
    consulted by `check_memory()`; `collect` is `gc.collect` (replaceable to count calls).
    """

    def __init__(
        self,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        monitor: MemoryMonitor | None = None,
        collect: Callable[[], object] = gc.collect,
    ) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ParameterError(
                f"max_items and max_bytes must be positive, got {max_items} and {max_bytes}"
            )
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.monitor = monitor
        self._collect = collect
        self._held: OrderedDict[str, HeldResults] = OrderedDict()
        self._lock = threading.RLock()
        self.evictions = 0
        self.collections = 0

    # -- holding ------------------------------------------------------------------------

    def put(self, key: str, results: SimulationResults, size_bytes: int | None = None) -> None:
        """Hold `results` under `key` (replacing and closing what was there), evicting the
        least recently used others until the limits hold again.

        Raises `MemoryBudgetError` when `results` alone is larger than `max_bytes`.
        """
        size = int(results.memory_usage_mb * 2**20) if size_bytes is None else size_bytes
        if size > self.max_bytes:
            raise MemoryBudgetError(
                f"results {key!r} take {size / 2**20:,.0f} MiB, more than this session's "
                f"{self.max_bytes / 2**20:,.0f} MiB for held results; open the run from disk "
                f"(ResultsFactory.open) instead of holding it in memory"
            )
        with self._lock:
            old = self._held.pop(key, None)
            if old is not None and old.results is not results:
                old.results.close()
            self._held[key] = HeldResults(key, results, size)
            while len(self._held) > self.max_items or self.total_bytes > self.max_bytes:
                self._evict_oldest()

    def get(self, key: str) -> SimulationResults | None:
        """The results under `key` (now the most recently used), or None."""
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return None
            self._held.move_to_end(key)
            return held.results

    def release(self, key: str) -> bool:
        """Close and forget `key`'s results; False if there were none."""
        with self._lock:
            held = self._held.pop(key, None)
        if held is None:
            return False
        held.results.close()
        return True

    def cleanup(self) -> int:
        """Release everything held and collect garbage; how many objects were released."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for item in held:
            item.results.close()
        self._gc()
        return len(held)

    # -- reporting ----------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(item.size_bytes for item in self._held.values())

    def held(self) -> list[HeldResults]:
        """What is held, least recently used first (for the dashboard's System page)."""
        with self._lock:
            return list(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    # -- moments to collect -------------------------------------------------------------

    def run_completed(self) -> None:
        """A run finished: its temporaries are garbage now."""
        self._gc()

    def before_run(self) -> None:
        """A run is about to start: return freed memory first."""
        self._gc()

    def check_memory(self) -> MemoryLevel | None:
        """Measure memory; at red, release everything held. The level, or None without a
        monitor."""
        if self.monitor is None:
            return None
        level = self.monitor.level()
        if level is MemoryLevel.RED:
            self.cleanup()
        return level

    def _evict_oldest(self) -> None:
        _key, held = self._held.popitem(last=False)
        held.results.close()
        self.evictions += 1

    def _gc(self) -> None:
        self._collect()
        self.collections += 1
