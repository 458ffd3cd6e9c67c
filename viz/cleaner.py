"""Remove the runs marked for cleanup in the background while the dashboard server runs.

One daemon thread per server wakes every `interval_s`, applies the registry's cap (which
marks the oldest finished runs beyond it) and deletes the marked runs through
`Registry.remove_marked`, which never deletes a run whose supervisor holds its run lock (a
running or resuming run) and deletes only a small run's entry, never its --out folder. Each
removal is logged. A failure (a read-only runs root, a locked registry) is logged and tried
again next time; it never stops the server.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from engine.errors import AmdsimError
from engine.registry import Registry

__all__ = ["DEFAULT_INTERVAL_S", "BackgroundCleaner"]

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 60.0


class BackgroundCleaner:
    """Deletes the runs under `runs_root` that are marked for cleanup, every `interval_s`."""

    def __init__(self, runs_root: Path, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.runs_root = Path(runs_root)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[str]:
        """One pass: the ids of the runs removed (an error is logged, not raised)."""
        try:
            removed = Registry(self.runs_root).remove_marked()
        except AmdsimError as exc:  # a read-only root, a locked registry: try again next time
            log.warning("background cleanup of %s failed: %s", self.runs_root, exc)
            return []
        except Exception:  # a bug: say so, but never stop the server
            log.exception("background cleanup of %s failed", self.runs_root)
            return []
        for run_id in removed:
            log.info("background cleanup removed run %s (marked for cleanup)", run_id)
        return removed

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True, name="amdsim-cleaner")
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for a pass in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()
