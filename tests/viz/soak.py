"""A long dashboard session: one browser page open with its 500 ms refreshes running, a run's
results opened, and the page reloaded now and then (a new session; the old one must close
cleanly). Samples the dashboard server's RSS; used by the soak test and perf/soak_dashboard.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from tests.viz.pages import open_results

__all__ = ["SoakResult", "soak"]


@dataclass
class SoakResult:
    samples: list[tuple[float, int]]  # (seconds since start, RSS bytes)
    warm_up_s: float

    def growth(self, window: int = 5) -> float:
        """Relative RSS growth from the end of the warm-up to the end (medians of `window`)."""
        after = [rss for t, rss in self.samples if t >= self.warm_up_s]
        start = statistics.median(after[:window])
        return (statistics.median(after[-window:]) - start) / start

    def describe(self) -> str:
        after = [rss for t, rss in self.samples if t >= self.warm_up_s]
        return (
            f"{len(self.samples)} samples over {self.samples[-1][0]:.0f} s; RSS "
            f"{self.samples[0][1] / 2**20:.0f} MiB at start, {after[0] / 2**20:.0f} MiB "
            f"after {self.warm_up_s:.0f} s warm-up, {after[-1] / 2**20:.0f} MiB at the end: "
            f"growth {self.growth():+.1%}"
        )


def soak(
    page,
    url: str,
    server_pid: int,
    run_id: str,
    duration_s: float,
    sample_every_s: float = 5.0,
    reload_every_s: float = 60.0,
    on_sample: Callable[[float, int], None] | None = None,
) -> SoakResult:
    """Keep a session busy for `duration_s`; returns the server's RSS samples."""
    server = psutil.Process(server_pid)
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    next_reload = reload_every_s
    _open_results(page, url, run_id)
    while (elapsed := time.monotonic() - started) < duration_s:
        if elapsed >= next_reload:
            next_reload += reload_every_s
            _open_results(page, url, run_id)
        rss = server.memory_info().rss
        samples.append((elapsed, rss))
        if on_sample is not None:
            on_sample(elapsed, rss)
        page.wait_for_timeout(sample_every_s * 1000)
    return SoakResult(samples, warm_up_s=min(120.0, duration_s / 5))


def _open_results(page, url: str, run_id: str) -> None:
    page.goto(url)
    page.get_by_text("New run").wait_for()
    open_results(page, run_id)
