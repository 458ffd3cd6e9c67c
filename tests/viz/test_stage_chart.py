"""The System page's stage chart: a stacked bar per worker and writer thread of a live run,
updated from its samples, with the bottleneck in words, and the last run's kept once it ends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from bokeh.models import HoverTool, NumeralTickFormatter

from engine.state_manager import StateManager
from ipc.messages import StageTimes
from tests.viz.test_components import sample, shown
from viz.context import ServerContext
from viz.stage_chart import ALL_STAGES, StageChart
from viz.system_page import SystemPage


def times(slot_wait: float) -> list[StageTimes]:
    worker = {"start-up": 0.5, "simulate": 6.0, "waiting for a slot": slot_wait, "other": 0.1}
    lane = {"waiting for batches": 1.0, "Parquet": 5.0, "other": 0.2}
    return [
        StageTimes(name=name, role="worker", pid=pid, wall_s=sum(worker.values()), stages=worker)
        for name, pid in (("worker-2", 12), ("worker-1", 11))
    ] + [StageTimes(name="writer lane 1", role="writer", pid=13, wall_s=6.2, stages=lane)]


def test_a_bar_per_process_seconds_per_stage_and_the_bottleneck_in_words():
    chart = StageChart()
    chart.show(times(slot_wait=0.2))
    data = chart.source.data
    # Bottom to top: worker-1, worker-2, then the writer's lane (Bokeh draws factors upwards).
    assert data["process"] == ["writer lane 1", "worker-2", "worker-1"]
    assert list(chart.figure.y_range.factors) == data["process"]
    assert data["simulate"] == [0.0, 6.0, 6.0] and data["Parquet"] == [5.0, 0.0, 0.0]
    assert data["simulate %"][2] == pytest.approx(100 * 6.0 / 6.8)
    for row in range(3):  # the stacks add up to each process's wall time
        assert sum(data[stage][row] for stage in ALL_STAGES) == pytest.approx(data["wall"][row])
    assert "workers' simulate stage" in chart.sentence.object
    chart.show(times(slot_wait=6.0))  # the writer falls behind: the same figure says so
    assert "bottleneck is the writer" in chart.sentence.object
    assert data is not chart.source.data and chart.source.data["waiting for a slot"][2] == 6.0


def test_the_chart_has_tooltips_titled_axes_plain_numbers_and_a_legend_above():
    plot = StageChart().figure
    tools = [t for t in plot.tools if isinstance(t, HoverTool)]
    assert len(tools) == len(ALL_STAGES)
    assert all(any(label == "share of its time" for label, _ in t.tooltips) for t in tools)
    assert plot.xaxis[0].axis_label and plot.yaxis[0].axis_label
    assert isinstance(plot.xaxis[0].formatter, NumeralTickFormatter)
    assert plot.legend[0] in plot.above


def test_the_system_page_charts_each_live_run_and_keeps_the_last_one_after_it_ends(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    page = SystemPage(context, StateManager())
    page.refresh()
    assert page.stages.objects == []  # no run: no chart
    watch = SimpleNamespace(latest=sample(stages=times(0.2)), ended=False)
    context.live._watches["20261204-120000-aaaaaa"] = watch
    page.refresh()
    chart = page.stage_charts["20261204-120000-aaaaaa"]
    assert chart.source.data["process"][-1] == "worker-1"
    watch.latest = sample(stages=times(6.0))
    page.refresh()
    assert page.stage_charts["20261204-120000-aaaaaa"] is chart  # updated, not rebuilt
    assert "bottleneck is the writer" in chart.sentence.object
    watch.ended = True
    page.refresh()
    assert list(page.stage_charts) == ["20261204-120000-aaaaaa"]  # the last run stays
    heading = shown(page.stages.objects[0].objects[0].object)
    assert "20261204-120000-aaaaaa (ended)" in heading
