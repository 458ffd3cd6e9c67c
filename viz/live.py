"""Follow running runs for every dashboard session at once: one metrics subscription per run
in this server process, however many sessions watch it.

A `RunWatch` subscribes to a run's metrics stream in a thread and keeps the latest sample;
sessions read it from their periodic callbacks. A watch ends when the run ends (the stream
closes); the final state is then read from the manifest. Subscribing never affects the run.

One watch follows one process. When this dashboard starts a process for a run that already
has a watch (resume, restart), the launcher tells `LiveRuns.follow_process`, which replaces
the finished watch with a new one bound to the new process. That watch ignores the manifest
the old process left ("cancelled", "completed") until the new process rewrites it, and ends
when the stream closes or, failing that, when the process exits. Guessing from the manifest
alone raced with the new process, which takes a moment to rewrite it.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

from engine.manifest import Manifest, read_manifest
from engine.run_dir import RunPaths
from ipc.messages import MetricsSample
from ipc.metrics import MetricsSubscriber

__all__ = ["LiveRuns", "RunWatch"]

CONNECT_WAIT_S = 30.0  # a run just launched takes a moment to open its metrics socket


class RunWatch:
    """The latest metrics of one run, kept up to date by a background thread.

    With `process` (a run process this server started), the watch belongs to that process:
    it waits for it to publish, whatever an earlier process of the run left in the manifest.
    """

    def __init__(self, run_dir: Path, process: subprocess.Popen[bytes] | None = None) -> None:
        self.paths = RunPaths(Path(run_dir))
        self.run_id = self.paths.root.name
        self.process = process
        self.latest: MetricsSample | None = None
        self.ended = False
        self.error = ""
        self._stop = threading.Event()
        self._subscriber: MetricsSubscriber | None = None
        self._thread = threading.Thread(
            target=self._follow, daemon=True, name=f"watch-{self.run_id}"
        )
        self._thread.start()

    def manifest(self) -> Manifest | None:
        """The run's manifest as it is on disk now, or None if it has none yet."""
        try:
            return read_manifest(self.paths.manifest)
        except Exception:
            return None

    def stop(self) -> None:
        self._stop.set()
        if self._subscriber is not None:
            with contextlib.suppress(OSError):
                self._subscriber.close()

    def _follow(self) -> None:
        deadline = time.monotonic() + CONNECT_WAIT_S
        while not self._stop.is_set():
            exit_code = None if self.process is None else self.process.poll()
            manifest = self.manifest()
            if manifest is not None and manifest.status != "running" and self.process is None:
                break  # already over
            if exit_code is not None:  # ended before it published: its manifest tells the end
                if exit_code != 0:
                    self.error = (
                        f"the run process exited with code {exit_code} before it started; "
                        f"see .logs/{self.run_id}.log in the runs folder"
                    )
                break
            if manifest is not None and manifest.status == "running" and manifest.metrics_address:
                try:
                    self._subscriber = MetricsSubscriber(manifest.metrics_address)
                except OSError:
                    self._subscriber = None
                if self._subscriber is not None:
                    with contextlib.suppress(OSError, ValueError):
                        for sample in self._subscriber:
                            self.latest = sample
                            if self._stop.is_set():
                                break
                    break
            if self.process is None and time.monotonic() > deadline:  # a process says by exiting
                self.error = "the run did not start its metrics stream"
                break
            self._stop.wait(0.1)
        self.ended = True


class LiveRuns:
    """Watches by run id, shared by every session of one dashboard server."""

    def __init__(self) -> None:
        self._watches: dict[str, RunWatch] = {}
        self._lock = threading.Lock()

    def follow_process(self, run_dir: Path, process: subprocess.Popen[bytes]) -> RunWatch:
        """A new watch of the run in `run_dir` for `process`, just started; replaces any other."""
        run_id = Path(run_dir).name
        with self._lock:
            old = self._watches.get(run_id)
            if old is not None:
                old.stop()
            watch = RunWatch(run_dir, process)
            self._watches[run_id] = watch
            return watch

    def get(self, run_id: str) -> RunWatch | None:
        """The current watch of `run_id`, if any (it may have ended)."""
        with self._lock:
            return self._watches.get(run_id)

    def watch(self, run_dir: Path) -> RunWatch:
        """The watch of the run in `run_dir`, started if there is none running."""
        run_id = Path(run_dir).name
        with self._lock:
            watch = self._watches.get(run_id)
            if watch is None or (watch.ended and _running(run_dir)):
                watch = RunWatch(run_dir)
                self._watches[run_id] = watch
            return watch

    def items(self) -> list[tuple[str, RunWatch]]:
        with self._lock:
            return list(self._watches.items())

    def stop_all(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.stop()
            self._watches.clear()


def _running(run_dir: Path) -> bool:
    try:
        return read_manifest(RunPaths(Path(run_dir)).manifest).status == "running"
    except Exception:
        return False
