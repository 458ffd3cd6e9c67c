"""A stopwatch per process (or thread): seconds spent in each named stage since it started.

Workers and the writer's threads each keep one `StageClock` and report `snapshot()`s to the
supervisor, which puts them in the metrics stream, prints them at the end of a run
(`amdsim run --timings`) and keeps them in the manifest (`engine.stage_timings` reads them).

Stages nest: entering a stage inside another pauses the outer one, so every second is
charged to exactly one stage and the named stages never add up to more than the wall time.
What no stage covers is reported as ``other``, so a snapshot's stages sum to its wall time.
A snapshot taken while a stage is open includes the open stage's time so far: a worker
blocked for seconds on a full channel shows it in its next report, not only once unblocked.

One clock belongs to one thread; another thread may take snapshots of it (the writer's
receiving thread reports its lanes' clocks): a snapshot copies a few floats under the GIL
and at worst misses the last few microseconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ipc.messages import StageTimes

__all__ = ["OTHER", "StageClock"]

OTHER = "other"  # the stage name for time no named stage covers


class StageClock:
    """Seconds per stage for one process or thread, from its creation to each snapshot."""

    def __init__(
        self,
        name: str,
        role: str,
        stages: tuple[str, ...],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self.role = role
        self._clock = clock
        self._started = clock()
        self._seconds = dict.fromkeys(stages, 0.0)
        self._open: list[str] = []  # the stages entered and not yet left, innermost last
        self._since = self._started  # when the innermost open stage was last charged

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Charge the time inside the block to `name` (and pause any enclosing stage)."""
        self._charge_open()
        self._open.append(name)
        try:
            yield
        finally:
            self._charge_open()
            self._open.pop()

    def backdate(self, name: str, seconds: float) -> None:
        """Start the clock `seconds` earlier and charge them to `name`: the time a process
        spent before it could make its clock (starting the interpreter, imports)."""
        seconds = max(0.0, seconds)
        self._started -= seconds
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def snapshot(self, pid: int | None = None) -> StageTimes:
        """The seconds of every stage so far, ending with ``other``; they sum to `wall_s`."""
        now = self._clock()
        seconds = dict(self._seconds)
        open_stages = list(self._open)
        if open_stages:  # the innermost open stage's time so far
            innermost = open_stages[-1]
            seconds[innermost] = seconds.get(innermost, 0.0) + max(0.0, now - self._since)
        wall = now - self._started
        named = sum(seconds.values())
        seconds[OTHER] = max(0.0, wall - named)
        return StageTimes(
            name=self.name,
            role=self.role,
            pid=os.getpid() if pid is None else pid,
            wall_s=max(wall, named),
            stages=seconds,
        )

    def _charge_open(self) -> None:
        now = self._clock()
        if self._open:
            innermost = self._open[-1]
            self._seconds[innermost] = self._seconds.get(innermost, 0.0) + (now - self._since)
        self._since = now
