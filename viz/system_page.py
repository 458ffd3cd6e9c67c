"""The System page: memory of the dashboard, each live run's internals (processes, pids,
memory per process, channel slots, shards), operation timings, the results cache hit rate,
and what the session's `StateManager` holds (with a button to release it)."""

from __future__ import annotations

import os

import pandas as pd
import panel as pn
import psutil

from engine.state_manager import StateManager
from viz.context import ServerContext
from viz.run_internals import run_internals_markdown

__all__ = ["SystemPage"]


class SystemPage:
    """Widgets and behaviour of the System page for one session."""

    def __init__(self, context: ServerContext, state: StateManager) -> None:
        self.context = context
        self.state = state
        self._process = psutil.Process(os.getpid())
        self.memory = pn.pane.Markdown("", css_classes=["system-memory"], disable_math=True)
        self.runs = pn.pane.Markdown("", css_classes=["system-runs"], disable_math=True)
        self.timings = pn.widgets.Tabulator(
            pd.DataFrame(columns=["operation", "count", "mean_ms", "max_ms"]),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
        )
        self.cache = pn.pane.Markdown("")
        self.held = pn.widgets.Tabulator(
            pd.DataFrame(columns=["key", "storage", "MiB"]),
            show_index=False,
            disabled=True,
            sizing_mode="stretch_width",
            css_classes=["held-table"],
        )
        self.release_button = pn.widgets.Button(label="Release held results", color="warning")
        self.release_button.on_click(lambda _: self.release())
        self.layout = pn.Column(
            "### Memory",
            self.memory,
            "### Live runs",
            self.runs,
            "### Operation timings",
            self.timings,
            "### Results cache",
            self.cache,
            "### Held by this session",
            self.held,
            self.release_button,
            sizing_mode="stretch_width",
        )

    def release(self) -> int:
        released = self.state.cleanup()
        self.refresh()
        return released

    def refresh(self) -> None:
        monitor = self.context.monitor
        own = self._process.memory_info().rss
        level = monitor.thresholds.level(own / monitor.limit.bytes)
        lines = [
            f"**Dashboard process** {own / 2**20:,.0f} MiB ({level}) of a "
            f"{monitor.limit.describe()} limit · sessions: {self.context.sessions}"
        ]
        self.memory.object = "\n\n".join(lines)
        runs = [
            run_internals_markdown(watch.latest, monitor.limit.bytes, monitor.thresholds)
            for _, watch in sorted(self.context.live.items())
            if watch.latest is not None and not watch.ended
        ]
        self.runs.object = "\n\n".join(runs) or "No run is going."
        frame = pd.DataFrame(
            self.context.timings.rows(), columns=["operation", "count", "mean_ms", "max_ms"]
        ).round(2)
        if not frame.equals(self.timings.value):
            self.timings.value = frame
        hits = misses = 0
        rows = []
        for held in self.state.held():
            statistics = getattr(held.results, "cache_statistics", None)
            if statistics is not None:
                cache = statistics()
                hits += cache.hits
                misses += cache.misses
            rows.append(
                {
                    "key": held.key,
                    "storage": held.results.storage,
                    "MiB": round(held.size_bytes / 2**20, 2),
                }
            )
        lookups = hits + misses
        rate = f"{100 * hits / lookups:.1f} %" if lookups else "-"
        self.cache.object = f"patient cache hit rate {rate} ({hits:,} hits, {misses:,} misses)"
        held_frame = pd.DataFrame(rows, columns=["key", "storage", "MiB"])
        if not held_frame.equals(self.held.value):
            self.held.value = held_frame
