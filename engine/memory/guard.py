"""`@check_memory_before`: refuse an operation whose memory estimate would cross red.

The estimate is a number of bytes or a function of the operation's arguments, so a method
can size itself (``estimate=lambda self, table: self.nbytes(table)``). The monitor is
found when the operation is called: the one given, else one shared per process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from engine.memory.monitor import MemoryMonitor

__all__ = ["check_memory_before", "process_monitor"]

P = ParamSpec("P")
R = TypeVar("R")
_shared: MemoryMonitor | None = None


def process_monitor() -> MemoryMonitor:
    """The monitor of this process's tree, created on first use (finding the limit once)."""
    global _shared  # noqa: PLW0603 - one per process by design: the limit is found once
    if _shared is None:
        _shared = MemoryMonitor()
    return _shared


def check_memory_before(
    estimate: int | Callable[..., int],
    monitor: MemoryMonitor | Callable[[], MemoryMonitor] | None = None,
    operation: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so it raises `MemoryBudgetError` instead of running when its
    estimate, added to what the process tree uses now, would cross the red level."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        name = operation or function.__qualname__

        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            needed = estimate(*args, **kwargs) if callable(estimate) else estimate
            if monitor is None:
                watcher = process_monitor()
            elif isinstance(monitor, MemoryMonitor):
                watcher = monitor
            else:
                watcher = monitor()
            watcher.require(int(needed), name)
            return function(*args, **kwargs)

        return guarded

    return decorate
