"""The System page's "where the time goes" chart: one stacked bar per worker and writer thread.

Each bar is a process's wall time so far, split by stage (`engine.pipeline.stage_clock`), as
the run's metrics stream carries it; under the chart, one sentence names the bottleneck
(`engine.stage_timings.describe_bottleneck`). Busy stages are coloured, waits are greys and
``other`` is the lightest grey, so a bar that is mostly grey is a process that waits.

The figure is built once per run shown and updated in place: every stage any process can
report has its column from the start, so a new worker only adds a bar.
"""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Legend, NumeralTickFormatter
from bokeh.plotting import figure

from engine.pipeline.stage_clock import OTHER
from engine.pipeline.worker import STAGES as WORKER_STAGES
from engine.pipeline.writer import RECEIVER_STAGES
from engine.pipeline.writer_lane import LANE_STAGES
from engine.stage_timings import describe_bottleneck, in_display_order
from ipc.messages import StageTimes
from viz.document_lock import dispatched

__all__ = ["ALL_STAGES", "StageChart"]

ALL_STAGES: tuple[str, ...] = tuple(
    dict.fromkeys((*WORKER_STAGES, *RECEIVER_STAGES, *LANE_STAGES, OTHER))
)
_WAIT_GREYS = {
    "waiting for work": "#9e9e9e",
    "waiting for a slot": "#757575",
    "waiting for batches": "#bdbdbd",
    OTHER: "#e0e0e0",
}
_BUSY_COLOURS = (
    "#8d6e63",  # start-up
    "#3949ab",  # simulate
    "#00897b",
    "#fb8c00",
    "#8e24aa",
    "#43a047",
    "#e53935",
    "#1e88e5",
    "#c0ca33",
    "#6d4c41",
    "#d81b60",
)
_BAR_HEIGHT_PX = 28


def _height(processes: int) -> int:
    """Pixels for the title, the legend's three rows, the axis and a bar per process."""
    return 190 + _BAR_HEIGHT_PX * max(1, processes)


def _colours() -> list[str]:
    busy = iter(_BUSY_COLOURS)
    return [_WAIT_GREYS.get(stage) or next(busy) for stage in ALL_STAGES]


class StageChart:
    """A stacked bar chart of one run's stage timings, and the bottleneck in words."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(_columns([]))
        self.figure = _stacked_bars(self.source)
        self.sentence = pn.pane.Markdown("", css_classes=["stage-bottleneck"], disable_math=True)
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width", height=_height(1))
        self.layout = pn.Column(self.pane, self.sentence, sizing_mode="stretch_width")

    @dispatched
    def show(self, times: list[StageTimes]) -> None:
        """Draw the latest timings (one bar per process) and say what limits the run."""
        data = _columns(times)
        processes = data["process"]
        if list(self.figure.y_range.factors) != processes:
            self.figure.y_range.factors = processes
            height = _height(len(processes))
            self.figure.height = self.pane.height = height
        self.source.data = data
        self.sentence.object = describe_bottleneck(times) if times else ""


def _columns(times: list[StageTimes]) -> dict[str, list[Any]]:
    """The source's columns: a process per row (the first listed at the top, as Bokeh
    draws factors upwards), seconds per stage, and shares for tooltips."""
    entries = list(reversed(in_display_order(times)))
    data: dict[str, list[Any]] = {"process": [e.name for e in entries]}
    data["wall"] = [e.wall_s for e in entries]
    for stage in ALL_STAGES:
        seconds = [e.stages.get(stage, 0.0) for e in entries]
        data[stage] = seconds
        data[f"{stage} %"] = [
            100 * value / e.wall_s if e.wall_s else 0.0
            for value, e in zip(seconds, entries, strict=True)
        ]
    return data


def _stacked_bars(source: ColumnDataSource) -> Any:
    plot = figure(
        title="Where the time goes: seconds since each process started, by stage",
        y_range=FactorRange(factors=[]),
        height=_height(1),
        sizing_mode="stretch_width",
        toolbar_location=None,
        tools="",
    )
    renderers = plot.hbar_stack(
        list(ALL_STAGES), y="process", height=0.7, source=source, color=_colours()
    )
    for stage, renderer in zip(ALL_STAGES, renderers, strict=True):
        renderer.name = stage
    plot.xaxis.axis_label = "seconds since the process started"
    plot.yaxis.axis_label = "process"
    plot.xaxis.formatter = NumeralTickFormatter(format="0,0[.][0]")
    plot.x_range.start = 0
    for stage, renderer in zip(
        ALL_STAGES, renderers, strict=True
    ):  # one tooltip per stage: its share
        plot.add_tools(
            HoverTool(
                renderers=[renderer],
                tooltips=[
                    ("process", "@process"),
                    ("stage", stage),
                    ("seconds", f"@{{{stage}}}{{0,0.00}}"),
                    ("share of its time", f"@{{{stage} %}}{{0.0}} %"),
                ],
            )
        )
    legend = Legend(
        items=[(stage, [renderer]) for stage, renderer in zip(ALL_STAGES, renderers, strict=True)],
        orientation="horizontal",
        click_policy="hide",
    )
    legend.ncols = 5
    plot.add_layout(legend, "above")
    return plot
