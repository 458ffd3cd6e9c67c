"""The Run page's memory display: one bar for the run's total memory against the real limit,
a sparkline of the last minutes, and a plain warning at yellow and red.

A clinician or analyst watching a run needs one answer: is memory a problem? Per-process
gauges and pids answer a developer's question, so they live on the System page
(`viz.run_internals`). The limit is the real one (cgroup or physical, `engine.memory`), and the
colours follow its thresholds (green below 70 %, yellow to 85 %, red above).
"""

from __future__ import annotations

import collections

import panel as pn
from bokeh.models import ColumnDataSource

from engine.memory import MemoryLevel, Thresholds
from viz.charts import hover
from viz.document_lock import dispatched

__all__ = ["SPARKLINE_SECONDS", "MemoryBar", "gauge_colour"]

SPARKLINE_SECONDS = 300.0  # the sparkline shows the last five minutes
_BAR_COLOURS = {
    MemoryLevel.GREEN: "success",
    MemoryLevel.YELLOW: "warning",
    MemoryLevel.RED: "danger",
}
_WARNINGS = {
    MemoryLevel.YELLOW: (
        "Memory is high: {percent:.0f} % of the {limit} limit. The run slows its workers to "
        "stay within it; it will finish, more slowly."
    ),
    MemoryLevel.RED: (
        "Memory is critical: {percent:.0f} % of the {limit} limit. The run has paused its "
        "workers until memory falls; close other programs, or cancel and run with fewer "
        "workers or smaller shards."
    ),
}


def gauge_colour(fraction: float, thresholds: Thresholds | None = None) -> str:
    """The Bootstrap colour of a memory bar at `fraction` of the limit."""
    return _BAR_COLOURS[(thresholds or Thresholds()).level(fraction)]


def _size(size_bytes: float) -> str:
    return (
        f"{size_bytes / 2**30:,.1f} GiB"
        if size_bytes >= 2**30
        else f"{size_bytes / 2**20:,.0f} MiB"
    )


class MemoryBar:
    """Total memory of one run: bar, label, sparkline and warning, reset for each run."""

    def __init__(self) -> None:
        self.bar = pn.indicators.Progress(
            value=0, max=100, width=300, bar_color="success", css_classes=["memory-bar"]
        )
        self.label = pn.pane.Markdown("", css_classes=["memory-label"])
        self.warning = pn.pane.Alert(
            "", alert_type="warning", visible=False, css_classes=["memory-warning"]
        )
        self.source = ColumnDataSource({"seconds_ago": [], "mib": []})
        self.figure = None  # the sparkline, drawn from the first sample (`_plot`)
        self._plot_slot = pn.Column(height=70, width=380)  # its room: nothing jumps
        self._history: collections.deque[tuple[float, float]] = collections.deque()
        self.layout = pn.Column(
            pn.Row(pn.pane.Markdown("**Memory**", width=70), self.bar, self.label),
            self._plot_slot,
            pn.Column(self.warning, min_height=80),  # room for the warning: nothing jumps
        )

    def reset(self) -> None:
        """Forget the last run (a new one is followed)."""
        self._history.clear()
        self.bar.value, self.bar.bar_color = 0, "success"
        self.label.object = ""
        self.warning.visible = False
        self._draw(0.0)

    def show(
        self, total_bytes: int, limit_bytes: int, elapsed_s: float, thresholds: Thresholds
    ) -> None:
        """One sample: `total_bytes` of the run's processes at `elapsed_s` into the run."""
        fraction = total_bytes / limit_bytes if limit_bytes else 0.0
        level = thresholds.level(fraction)
        self.bar.value = min(100, round(100 * fraction))
        self.bar.bar_color = _BAR_COLOURS[level]
        self.label.object = f"{_size(total_bytes)} of {_size(limit_bytes)} ({100 * fraction:.0f} %)"
        template = _WARNINGS.get(level)
        self.warning.alert_type = "danger" if level is MemoryLevel.RED else "warning"
        self.warning.object = (
            template.format(percent=100 * fraction, limit=_size(limit_bytes)) if template else ""
        )
        self.warning.visible = template is not None
        self._plot()
        self._history.append((elapsed_s, total_bytes / 2**20))
        while self._history and self._history[0][0] < elapsed_s - SPARKLINE_SECONDS:
            self._history.popleft()
        self._draw(elapsed_s)

    def _plot(self) -> None:
        """Put the sparkline in (once): before the first sample it would be an empty frame,
        and its ~40 Bokeh models cost the first load of every session."""
        if self.figure is None:
            self.figure = _sparkline(self.source)
            self._plot_slot.objects = [pn.pane.Bokeh(self.figure, height=70, width=380)]

    @dispatched
    def _draw(self, now_s: float) -> None:
        self.source.data = {
            "seconds_ago": [t - now_s for t, _ in self._history],
            "mib": [mib for _, mib in self._history],
        }


def _sparkline(source: ColumnDataSource):
    """A bare line of the last minutes: no toolbar, no grid, the time axis only."""
    from bokeh.plotting import figure  # noqa: PLC0415 - as viz.charts does

    plot = figure(
        height=70, width=380, toolbar_location=None, tools="", x_range=(-SPARKLINE_SECONDS, 0)
    )
    plot.line("seconds_ago", "mib", source=source, line_width=2, color="#3949ab")
    plot.yaxis.visible = False
    plot.xgrid.visible = plot.ygrid.visible = False
    plot.xaxis.axis_label = "seconds ago"
    plot.xaxis.axis_label_text_font_size = "8pt"
    plot.outline_line_color = None
    hover(plot, [("seconds ago", "@seconds_ago{0}"), ("memory", "@mib{0,0} MiB")], mode="vline")
    return plot
