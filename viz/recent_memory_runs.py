"""The dashboard server's recent in-memory runs, so they outlive the session that made them.

A run of up to 1,000 patients started on the Run page is simulated in the server and never
written to disk (unless saved with the CLI's --out). Held only by the browser session that
started it, it vanished on a reload while the Runs page still listed it. The server keeps the
last `KEEP` such runs (a few MiB each), whoever started them: a reloaded or second session
opens them on the Results page, and the download route serves them. Older ones are let go
(their registry entry stays, marked "memory, not saved").
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from engine.results.base import SimulationResults

__all__ = ["KEEP", "RecentMemoryRuns"]

KEEP = 8


class RecentMemoryRuns:
    """The last `keep` in-memory results by run id, newest last; safe across threads."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._runs: OrderedDict[str, SimulationResults] = OrderedDict()
        self._lock = threading.Lock()

    def __setitem__(self, key: str, results: SimulationResults) -> None:
        with self._lock:
            self._runs[key] = results
            self._runs.move_to_end(key)
            while len(self._runs) > self.keep:
                self._runs.popitem(last=False)

    def __getitem__(self, key: str) -> SimulationResults:
        with self._lock:
            return self._runs[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._runs

    def get(self, key: str) -> SimulationResults | None:
        with self._lock:
            return self._runs.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._runs)
