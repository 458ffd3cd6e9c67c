"""The System page: memory of the dashboard, each live run's internals (processes, pids,
memory per process, channel slots, shards) and where its time goes (a stacked bar per worker
and writer thread, with the bottleneck in words: `viz.stage_chart`), operation timings, the results cache hit rate,
and what the session's `StateManager` holds (with a button to release it)."""

from __future__ import annotations

import os

import pandas as pd
import panel as pn
import psutil

from engine.state_manager import StateManager
from viz.context import ServerContext
from viz.run_internals import run_internals_markdown
from viz.safe_text import plain
from viz.stage_chart import StageChart

__all__ = ["SystemPage"]


class SystemPage:
    """Widgets and behaviour of the System page for one session."""

    def __init__(self, context: ServerContext, state: StateManager) -> None:
        self.context = context
        self.state = state
        self._process = psutil.Process(os.getpid())
        self.memory = pn.pane.Markdown("", css_classes=["system-memory"], disable_math=True)
        self.runs = pn.pane.Markdown("", css_classes=["system-runs"], disable_math=True)
        self.stage_charts: dict[str, StageChart] = {}  # by run id, for the runs shown
        self._stages_live = False  # whether those runs are live (else: the last one, ended)
        self.stages = pn.Column(sizing_mode="stretch_width", css_classes=["system-stages"])
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
            self.stages,
            "### Operation timings",
            self.timings,
            "### Results cache",
            self.cache,
            "### Held by this session",
            self.held,
            self.release_button,
            sizing_mode="stretch_width",
        )

    def _show_stages(self) -> None:
        """A stage chart per live run with timings; the last one stays once its run ends."""
        watches = [
            (run_id, watch)
            for run_id, watch in sorted(self.context.live.items())
            if watch.latest is not None and watch.latest.stages
        ]
        live = [(run_id, watch) for run_id, watch in watches if not watch.ended]
        last = [max(watches, key=lambda item: item[1].latest.time)] if watches else []
        shown = live or last
        charts: dict[str, StageChart] = {}
        for run_id, watch in shown:
            chart = self.stage_charts.get(run_id) or StageChart()
            chart.show(watch.latest.stages)
            charts[run_id] = chart
        heading = (
            "### Where the time goes: run {} (ended)"
            if not live
            else "### Where the time goes: run {}"
        )
        if list(charts) != list(self.stage_charts) or self._stages_live != bool(live):
            self.stages.objects = [
                pn.Column(heading.format(plain(run_id)), chart.layout)
                for run_id, chart in charts.items()
            ]
        self.stage_charts = charts
        self._stages_live = bool(live)

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
        self._show_stages()
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
