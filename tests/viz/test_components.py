"""Dashboard components without a browser: recorded samples and real aggregates in, widget
values, colours and chart data out."""

from __future__ import annotations

import datetime
import html
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from msgspec.structs import replace as msgspec_replace

from engine import run_simulation
from engine.manifest import read_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.registry import Registry
from engine.results import ResultsFactory
from engine.run_dir import RunLock, RunPaths, new_run_id
from engine.small_runs import memory_entry
from engine.state_manager import StateManager
from engine.stats.live import read_live_statistics
from ipc.messages import MetricsSample, ProcessMemory
from tests.helpers import V1_PROTOCOL
from viz.app import DashboardSession
from viz.charts import (
    DiscontinuationChart,
    DistributionChart,
    InjectionsChart,
    StatesChart,
    VisionProgressionChart,
    WorkloadChart,
)
from viz.cleaner import BackgroundCleaner
from viz.context import ServerContext
from viz.memory_bar import gauge_colour
from viz.report import write_report
from viz.results_page import ResultsPage
from viz.run_page import RunPage
from viz.runs_page import RunsPage, entries_frame
from viz.safe_text import plain
from viz.system_page import SystemPage
from viz.timeline_chart import PatientTimelineChart

MiB = 1 << 20
_MARKDOWN = MarkdownIt("gfm-like")  # what Panel's Markdown and Alert panes render with


def rendered(markdown: str) -> str:
    """The HTML a Markdown pane puts into the page for `markdown`."""
    return _MARKDOWN.render(markdown)


def shown(markdown: str) -> str:
    """The text a reader sees in a Markdown pane holding `markdown` (tags dropped)."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown))).strip()


LIMIT = 1000 * MiB


def sample(**changes) -> MetricsSample:
    values = dict(
        run_id="20261130-000000-abcdef",
        time=0.0,
        elapsed_s=12.5,
        status="running",
        shards_done=10,
        shards_total=40,
        patients_done=40_960,
        patients_total=163_840,
        visits_written=900_000,
        patients_per_s=3277.0,
        visits_per_s=72_000.0,
        eta_s=37.5,
        processes=[
            ProcessMemory(role="supervisor", pid=1, rss_bytes=100 * MiB),
            ProcessMemory(role="worker", pid=2, rss_bytes=750 * MiB),
            ProcessMemory(role="writer", pid=3, rss_bytes=900 * MiB),
        ],
        channel_slots=10,
        channel_in_use=4,
        channel_peak=7,
        bytes_written=5 * MiB,
        memory_used_bytes=1750 * MiB,
        memory_limit_bytes=LIMIT,
        memory_limit_source="cgroup v2 memory.max",
        memory_level="red",
    )
    values.update(changes)
    return MetricsSample(**values)


@pytest.fixture
def context(tmp_path):
    return ServerContext(runs_root=tmp_path / "runs")


@pytest.fixture(scope="module")
def small_results():
    return run_simulation(load_protocol(V1_PROTOCOL), n_patients=600, years=4, seed=8)


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_dir = root / new_run_id()
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=5_000, years=3, seed=9),
        run_dir,
        PipelineOptions(workers=1),
    )
    return root, run_dir


@pytest.mark.parametrize(
    ("fraction", "colour"),
    [
        (0.0, "success"),
        (0.699, "success"),
        (0.70, "warning"),
        (0.85, "warning"),
        (0.851, "danger"),
        (1.5, "danger"),
    ],
)
def test_gauge_colours_follow_the_levels(fraction, colour):
    assert gauge_colour(fraction) == colour


def test_a_recorded_sample_sets_progress_counts_and_one_memory_bar_with_a_warning(context):
    """The Run page speaks to the person waiting: progress, rate, ETA and memory as one total
    against the real limit (here 1,750 MiB of 1,000 MiB: red), with a warning in words."""
    page = RunPage(context, StateManager())
    page.show_sample(sample())
    assert page.progress.value == 25
    assert "running" in page.status.object and "ETA 38 s" in page.status.object
    assert "patients 40,960 / 163,840" in page.counts.object
    assert "3,277 patients/s" in page.counts.object and "72,000 visits/s" in page.counts.object
    assert "shard" not in page.counts.object  # internals: the System page
    memory = page.memory
    assert (memory.bar.value, memory.bar.bar_color) == (100, "danger")
    assert memory.label.object == "1.7 GiB of 1,000 MiB (175 %)"
    assert memory.warning.visible and memory.warning.object.startswith("Memory is critical")
    page.show_sample(
        sample(
            processes=[ProcessMemory(role="worker", pid=2, rss_bytes=LIMIT * 3 // 4)],
            elapsed_s=20.0,
        )
    )
    assert (memory.bar.value, memory.bar.bar_color) == (75, "warning")
    assert memory.warning.object.startswith("Memory is high: 75 %")
    page.show_sample(
        sample(
            processes=[ProcessMemory(role="worker", pid=2, rss_bytes=LIMIT // 10)], elapsed_s=400.0
        )
    )
    assert (memory.bar.value, memory.bar.bar_color) == (
        10,
        "success",
    ) and not memory.warning.visible
    # The sparkline keeps the last five minutes: the sample at 12.5 s is gone at 400 s.
    assert memory.source.data["seconds_ago"] == [0.0]
    page.follow_existing(context.runs_root / "20261130-000000-abcdef")
    try:
        assert memory.bar.value == 0 and memory.source.data["mib"] == []  # a new run
    finally:
        page.watch.stop()


def test_the_system_page_shows_each_live_runs_processes_channel_and_shards(context):
    from viz.run_internals import run_internals_markdown

    markdown = run_internals_markdown(sample(), LIMIT, context.monitor.thresholds)
    text = shown(markdown)
    assert "shards 10 / 40" in text and "channel 4 of 10 slots in use (peak 7)" in text
    assert "1,750 MiB over 3 processes" in text
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "pid" not in line]
    assert [row.split(" | ")[0:2] for row in rows] == [
        ["| supervisor", "1"],
        ["| worker", "2"],
        ["| writer", "3"],
    ]
    assert [row.split(" | ")[-1] for row in rows] == ["green |", "yellow |", "red |"]
    cluster = shown(
        run_internals_markdown(sample(channel_slots=0), LIMIT, context.monitor.thresholds)
    )
    assert "each task writes its own part files" in cluster


def test_a_paused_run_says_so(context):
    page = RunPage(context, StateManager())
    page.show_sample(sample(paused=True, memory_level="yellow"))
    assert "paused: memory is high" in page.status.object


def test_vision_chart_data_are_the_monthly_aggregates(small_results):
    stats = small_results.statistics()
    chart = VisionProgressionChart()
    chart.update(stats)
    monthly = stats.monthly_vision()
    data = chart.source.data
    assert data["month"] == monthly.month and data["count"] == monthly.count
    np.testing.assert_allclose(data["mean"], monthly.mean)
    assert all(
        lo <= mid <= hi for lo, mid, hi in zip(data["p5"], data["p50"], data["p95"], strict=True)
    )
    assert sum(data["count"]) == stats.totals().visits


def test_distribution_state_workload_discontinuation_and_injection_charts(small_results):
    stats = small_results.statistics()
    summary = small_results.summary_stats()
    final = DistributionChart("Final VA", "VA", "final_va")
    change = DistributionChart("VA change", "letters", "va_change", offset=-100)
    states, workload = StatesChart(), WorkloadChart()
    reasons, injections = DiscontinuationChart(), InjectionsChart()
    for chart in (final, change, states, workload, reasons, injections):
        chart.update(stats)
    patients = small_results.to_dataframe("patients")
    assert sum(final.source.data["patients"]) == summary.patients
    histogram = zip(final.source.data["value"], final.source.data["patients"], strict=True)
    assert {v: c for v, c in histogram if c} == {
        int(v): int(c) for v, c in patients["final_vision"].value_counts().items()
    }
    changes = (patients["final_vision"] - patients["baseline_vision"]).value_counts()
    assert {
        v: c
        for v, c in zip(change.source.data["value"], change.source.data["patients"], strict=True)
        if c
    } == {int(v): int(c) for v, c in changes.items()}
    assert sum(final.source.data["percent"]) == pytest.approx(100.0)
    percent = np.array(
        [states.source.data[name] for name in ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")]
    )
    np.testing.assert_allclose(percent.sum(axis=0), 100.0)  # per cent of each month's visits
    assert sum(workload.source.data["visits"]) == summary.visits
    assert sum(workload.source.data["injections"]) == summary.injections
    reason_data = reasons.source.data
    assert sum(reason_data["patients"]) == summary.discontinued
    np.testing.assert_allclose(  # per cent of the whole cohort, beside the counts
        reason_data["percent"], [100 * n / summary.patients for n in reason_data["patients"]]
    )
    assert "Poor vision" in reason_data["label"] and reasons.figure.y_range.factors == list(
        reason_data["label"]
    )
    box = {k: v[0] for k, v in injections.source.data.items() if k != "row"}
    assert box["p5"] <= box["p25"] <= box["p50"] <= box["p75"] <= box["p95"]
    assert box["mean"] == pytest.approx(stats.sketch_mean("injections_per_year"))
    assert box["p50"] == pytest.approx(stats.sketch_quantiles("injections_per_year", [0.5])[0])


def test_every_chart_has_a_tooltip_titled_axes_and_plain_numbers(tmp_path):
    """Clinical language: hover on every chart, units on the axes, no scientific notation,
    the legend outside the data."""
    from bokeh.models import HoverTool, LinearAxis, NumeralTickFormatter

    page = ResultsPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())
    charts = [*page.charts.all, page.timeline]
    for chart in charts:
        plot = chart.figure
        assert any(isinstance(t, HoverTool) for t in plot.tools), plot.title.text
        assert plot.xaxis[0].axis_label, plot.title.text
        for axis in (*plot.xaxis, *plot.yaxis):
            if isinstance(axis, LinearAxis):
                assert isinstance(axis.formatter, NumeralTickFormatter), plot.title.text
        assert not plot.legend or plot.legend[0] in plot.above, plot.title.text
    assert page.timeline.figure.xaxis[0].axis_label == "months since enrolment"


def test_patient_timeline_marks_injections(small_results):
    record = small_results.get_patient(3)
    visits = record.visits.to_pydict()
    chart = PatientTimelineChart()
    chart.update(visits, int(record.patient["enrollment_day"]))
    assert chart.visits.data["vision"] == visits["vision"]
    assert chart.visits.data["day"][0] == visits["day"][0] - record.patient["enrollment_day"]
    assert chart.visits.data["month"][-1] == pytest.approx(chart.visits.data["day"][-1] / 30.4375)
    assert len(chart.injections.data["day"]) == sum(visits["injected"])


def test_results_page_shows_in_memory_and_on_disk_runs(context, small_results, streamed_run):
    root, run_dir = streamed_run
    context = ServerContext(runs_root=root)
    state = StateManager()
    state.put("memory-1", small_results)
    page = ResultsPage(context, state)
    assert page.open("memory-1")
    assert "In memory" in page.badge.object and "**Patients** 600" in page.summary.object
    assert page.open(run_dir.name)
    assert "On disk" in page.badge.object and "Compression ratio" in page.summary.object
    assert run_dir.name in state and page.charts.vision.source.data["month"]
    assert page.lookup(42)
    assert page.patient_summary.object.startswith("**Patient 42**")
    assert page.timeline.visits.data["day"]
    assert not page.lookup(10**9)
    assert "Patient 1000000000" in shown(page.patient_summary.object)
    assert not page.open("no-such-run") and "cannot open no-such-run" in shown(page.message.object)
    page.refresh_choices()
    assert page.run_select.values == ["memory-1", run_dir.name]
    state.cleanup()


def test_upload_validation_messages(context):
    page = RunPage(context, StateManager())
    bad = load_protocol_text_bytes().replace(b"0.85", b"0.95", 1)
    assert not page.receive_upload(bad, "mine.yaml")
    assert page.message.alert_type == "danger"
    assert re.search(
        r"mine\.yaml: \$\.disease_transitions\.STABLE: .*sum", shown(page.message.object)
    )
    assert not page.receive_upload(b"a: [", "broken.yaml")
    assert shown(page.message.object).startswith("broken.yaml:")
    assert not page.receive_upload(b"#" * (context.max_upload_bytes + 1), "huge.yaml")
    assert "larger than the 256 KiB allowed" in shown(page.message.object)
    assert page.receive_upload(load_protocol_text_bytes(), "good.yaml")
    assert page.protocol.value == "(uploaded file)" and page.message.alert_type == "success"


XSS_FILE_NAME = "<img src=x onerror=window.__xss=1>.yaml"
TRICKY_TEXTS = [
    XSS_FILE_NAME,
    "<script>alert(1)</script> & &amp; &lt;b&gt;",
    "**bold** _it_ `code` [link](https://example.com) ![i](x.png) www.example.com",
    "# heading | a | b |\n---",
    "$$x$$ \\(y\\) ~~strike~~ 1. 2) - + > quote <!-- c -->",
    "".join(chr(c) for c in range(33, 127)),  # every ASCII punctuation mark
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_plain_text_shows_verbatim_in_a_markdown_pane(text):
    html_out = rendered(plain(text))
    assert "<img" not in html_out and "<script" not in html_out and "<a " not in html_out
    assert "<strong>" not in html_out and "<h1>" not in html_out and "<code>" not in html_out
    assert " ".join(shown(plain(text)).split()) == " ".join(text.split())


def test_dashboard_upload_messages_do_not_render_html(context, streamed_run):
    """Case 10: file names, protocol names, run ids and errors are shown as text, not HTML."""
    page = RunPage(context, StateManager())
    bad = load_protocol_text_bytes().replace(b"0.85", b"0.95", 1)
    assert not page.receive_upload(bad, XSS_FILE_NAME)
    assert "<img" not in rendered(page.message.object)
    assert "&lt;img src=x onerror=window" in rendered(page.message.object)
    assert shown(page.message.object).startswith(XSS_FILE_NAME + ": $.disease_transitions")

    evil_name = "<img src=x onerror=alert(2)> [click](https://example.com)"
    good = load_protocol_text_bytes().replace(b"name: ", f"name: '{evil_name}' #".encode(), 1)
    assert page.receive_upload(good, XSS_FILE_NAME), shown(page.message.object)
    assert shown(page.message.object) == f"{XSS_FILE_NAME}: valid protocol '{evil_name}'"
    assert "<img" not in rendered(page.message.object) and "<a " not in rendered(
        page.message.object
    )
    assert all("<" not in p.name for p in (context.runs_root / ".uploads").iterdir())

    page.show_sample(sample(run_id="<img src=x onerror=alert(3)>"))
    assert "<img" not in rendered(page.status.object)
    assert shown(page.status.object).startswith("<img src=x onerror=alert(3)>: running")

    root, _ = streamed_run
    results = ResultsPage(ServerContext(runs_root=root), StateManager())
    assert not results.open("<img src=x onerror=alert(4)>")
    assert "<img" not in rendered(results.message.object)
    assert shown(results.message.object).startswith("cannot open <img src=x onerror=alert(4)>")


def load_protocol_text_bytes() -> bytes:
    from engine.model.protocol_loader import resolve_protocol_path

    return resolve_protocol_path("aflibercept_treat_and_extend").read_bytes()


def test_bad_parameters_are_refused_on_the_form(context):
    page = RunPage(context, StateManager())
    page.years.value = 500
    assert page.start() is None
    assert "years must be" in shown(page.message.object) and page.message.alert_type == "danger"


def test_a_small_run_from_the_form_is_held_in_memory(context):
    state = StateManager()
    finished = []
    page = RunPage(context, state, on_finished=finished.append)
    page.patients.value = 300
    key = page.start()
    page.join(timeout_s=60)
    assert key is not None and key in state and finished == [key]
    assert page.progress.value == 100 and "completed in memory" in page.status.object
    assert state.get(key).storage == "memory"


def test_a_small_run_goes_off_the_event_loop_and_the_refresh_shows_its_end(context, monkeypatch):
    """The click returns at once (the server keeps answering other sessions); the page's
    periodic refresh shows the results when the thread has them, or the run's error."""
    import viz.small_run

    release = threading.Event()
    real = viz.small_run.run_simulation

    def held(*args, **kwargs):
        assert release.wait(30), "the test never released the run"
        if kwargs.get("seed") == 99:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(viz.small_run, "run_simulation", held)
    state = StateManager()
    page = RunPage(context, state)
    page.patients.value = 300
    key = page.start()
    assert key is not None and key not in state  # still going: the click did not wait
    assert "running in memory" in page.status.object and page.start_button.disabled
    assert page.start() is None and "a run is already going" in page.message.object
    page.refresh()
    assert key not in state
    release.set()
    deadline = time.monotonic() + 60
    while key not in state:
        assert time.monotonic() < deadline, "the refresh never showed the finished run"
        page.refresh()
        time.sleep(0.02)
    assert "completed in memory" in page.status.object and not page.start_button.disabled
    page.seed.value = 99
    failing = page.start()
    page.join(timeout_s=60)
    assert failing not in state and "failed" in page.status.object
    assert shown(page.message.object) == "the in-memory run failed: injected failure"
    assert not page.start_button.disabled
    state.cleanup()


def test_a_run_that_does_not_fit_is_not_started(context):
    page = RunPage(context, StateManager())
    page.patients.value = 50_000_000
    page.years.value = 40
    from unittest import mock

    with mock.patch(
        "viz.run_page.check_run_fits",
        side_effect=__import__("engine.errors").errors.DiskSpaceError("too big"),
    ):
        assert page.start() is None
    assert (
        shown(page.message.object) == "not started: too big"
        and page.message.alert_type == "warning"
    )
    assert not context.launcher.launched


def test_runs_page_lists_filters_and_acts_on_the_registry(streamed_run, tmp_path):
    root, run_dir = streamed_run
    context = ServerContext(runs_root=root)
    opened = []
    page = RunsPage(context, on_open=opened.append, on_follow=lambda _: None)
    page.refresh()
    assert list(page.table.value["run_id"]) == [run_dir.name]
    assert page.table.value.iloc[0]["status"] == "completed"
    page.search.value = "nothing-matches"
    page.refresh()
    assert page.table.value.empty
    page.search.value = ""
    page.status_filter.value = "completed"
    page.refresh()
    page.open_selected()
    assert "select a run first" in shown(page.message.object) and not opened
    page.select(run_dir.name)
    page.open_selected()
    assert opened == [run_dir.name]
    page.resume_selected()
    assert "cannot resume" in shown(page.message.object) and "completed" in shown(
        page.message.object
    )
    page.mark_selected()
    assert Registry(root).get(run_dir.name).marked_for_cleanup
    page.refresh()
    assert page.table.value.iloc[0]["marked"] == "yes"
    page.mark_selected()
    assert not Registry(root).get(run_dir.name).marked_for_cleanup


def test_system_page_reports_timings_cache_and_releases_held_results(streamed_run):
    root, run_dir = streamed_run
    context = ServerContext(runs_root=root)
    state = StateManager()
    results_page = ResultsPage(context, state)
    results_page.open(run_dir.name)
    results_page.lookup(7)
    results_page.lookup(7)
    page = SystemPage(context, state)
    page.refresh()
    operations = set(page.timings.value["operation"])
    assert {"open results", "patient lookup", "update charts"} <= operations
    assert "hit rate 50.0 % (1 hits, 1 misses)" in page.cache.object
    assert list(page.held.value["key"]) == [run_dir.name]
    assert "Dashboard process" in page.memory.object
    assert page.release() == 1 and page.held.value.empty and len(state) == 0


def test_closing_a_session_releases_what_it_holds(streamed_run):
    root, run_dir = streamed_run
    session = DashboardSession(ServerContext(runs_root=root))
    session.show_results(run_dir.name)
    assert len(session.state) == 1 and session.tabs.active == 2
    session.close()
    assert len(session.state) == 0 and session.closed


def test_report_is_one_self_contained_file(streamed_run, tmp_path):
    _, run_dir = streamed_run
    out = write_report(run_dir, tmp_path / "report.html")
    text = out.read_text()
    assert "Bokeh" in text and "amdsim results" in text and "On disk" in text
    assert not re.search(r"""<(script|link|img)[^>]*(src|href)=["']https?://""", text), "fetches"
    assert text.count('"type":"object","name":"Figure"') >= 7 or text.count("Figure") >= 7


def test_the_writer_publishes_live_statistics_while_running(tmp_path):
    run_dir = tmp_path / "run"
    seen = []
    from engine.pipeline import Supervisor

    supervisor = Supervisor(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=300_000, years=3, seed=1),
        run_dir,
        PipelineOptions(workers=1, live_stats_interval_s=0.05),
    )
    supervisor.start()
    import threading

    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            live = read_live_statistics(RunPaths(run_dir))
            if live is not None:
                seen.append(live.totals().patients)
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        manifest = supervisor.run()
    finally:
        done.set()
        poller.join()
    assert manifest.status == "completed"
    assert any(0 < n < 300_000 for n in seen), seen
    assert seen == sorted(seen), "live counts only grow"
    assert not RunPaths(run_dir).live_stats.exists(), "stats.json replaces the live file"
    assert read_manifest(run_dir / "manifest.json").totals.patients == 300_000
    with ResultsFactory.open(run_dir) as results:
        assert results.statistics().totals().patients == 300_000


def test_paths_helper_is_inside_the_runs_root(context):
    assert Path(context.runs_root).is_dir()


def test_report_and_dashboard_commands_from_the_console_script(streamed_run, tmp_path):
    import subprocess
    import sys

    root, run_dir = streamed_run
    amdsim = str(Path(sys.executable).with_name("amdsim"))
    out = tmp_path / "nested" / "report.html"
    done = subprocess.run(
        [amdsim, "report", run_dir.name[:12], "--runs-dir", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "wrote" in done.stdout
    missing = subprocess.run(
        [amdsim, "report", "nope", "--runs-dir", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "nope" in missing.stderr
    helped = subprocess.run(
        [amdsim, "dashboard", "--help"], capture_output=True, text=True, check=True
    )
    assert "127.0.0.1" in helped.stdout


# -- issue 10: small runs on the Runs page, the cap, background cleanup -------------------


def test_a_small_run_from_the_form_is_listed_on_the_runs_page_as_not_saved(context):
    """Case 18: a dashboard run of <= 1000 patients is in the registry, marked not saved."""
    state = StateManager()
    run_page = RunPage(context, state)
    run_page.patients.value = 300
    run_id = run_page.start()
    run_page.join(timeout_s=60)
    assert run_id is not None and run_id in state
    runs_page = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    runs_page.refresh()
    row = runs_page.table.value.iloc[0]
    assert (row["run_id"], row["status"], row["storage"]) == (
        run_id,
        "completed",
        "memory, not saved",
    )
    assert row["patients"] == 300
    runs_page.select(run_id)
    runs_page.restart_selected()
    assert "ran in memory" in runs_page.message.object
    assert ResultsPage(context, state).open(run_id)  # the session that ran it holds it
    # Another session (a reload) of the same server opens it: the server keeps it.
    assert ResultsPage(context, StateManager()).open(run_id)
    # Another dashboard server on the same runs folder never had its rows.
    elsewhere = ResultsPage(ServerContext(runs_root=context.runs_root), StateManager())
    assert not elsewhere.open(run_id)
    assert "ran in memory and was not saved" in elsewhere.message.object


def _small_entry(root: Path, hours: int, **changes) -> str:
    run_id = f"20261101-{hours:02d}0000-{hours:04x}"
    created = datetime.datetime(2026, 11, 1, hours, tzinfo=datetime.UTC)
    params = RunParameters(n_patients=100, years=1, seed=hours)
    Registry(root).add(memory_entry(run_id, "Mine", params, (100, 800), created, **changes))
    return run_id


def test_runs_page_sets_the_cap_and_cleans_up_the_marked_runs(context):
    """Case 19: the Runs page's "keep at most" control and "Clean up marked" button."""
    root = context.runs_root
    ids = [_small_entry(root, hours) for hours in range(1, 5)]
    page = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    page.refresh()
    assert page.keep.value == 0
    page.keep.value = 2
    page.set_cap()
    assert Registry(root).max_runs == 2
    assert f"newly marked for cleanup: {ids[0]}, {ids[1]}" in shown(page.message.object)
    marked = dict(zip(page.table.value["run_id"], page.table.value["marked"], strict=True))
    assert [marked[i] for i in ids] == ["yes", "yes", "", ""]
    page.cleanup_marked()
    assert shown(page.message.object) == f"removed: {ids[0]}, {ids[1]}"
    assert sorted(page.table.value["run_id"]) == ids[2:]
    again = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    again.refresh()
    assert again.keep.value == 2  # the stored cap is shown
    again.keep.value = 0
    again.set_cap()
    assert Registry(root).max_runs is None and "no cap on runs" in shown(again.message.object)


def test_the_background_cleaner_removes_marked_runs_never_a_running_one_and_logs_them(
    tmp_path, caplog
):
    """Case 19: the server's periodic task deletes marked runs, skips a held one, logs."""
    from tests.engine.test_registry import manifest

    root = tmp_path / "runs"
    registry = Registry(root)
    done, running = "20261101-010000-0001", "20261101-020000-0002"
    for run_id in (done, running):
        registry.register(manifest(run_id))
        registry.run_dir(run_id).mkdir()
        registry.mark_for_cleanup(run_id)
    lock = RunLock(RunPaths(registry.run_dir(running)))  # its supervisor is going
    cleaner = BackgroundCleaner(root, interval_s=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="viz.cleaner"):
            cleaner.start()
            deadline = time.monotonic() + 10
            while registry.run_dir(done).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            cleaner.stop()
        assert not registry.run_dir(done).exists()
        assert registry.run_dir(running).is_dir()
        assert [e.run_id for e in Registry(root).list()] == [running]
        assert f"background cleanup removed run {done}" in caplog.text
        assert running not in caplog.text
    finally:
        cleaner.stop()
        lock.release()
    assert cleaner.run_once() == [running]  # once its supervisor has let go


def test_the_dashboard_server_cleans_up_marked_runs_while_it_serves(tmp_path, monkeypatch):
    """Case 19: `serve_dashboard` runs the background cleaner and stops it on the way out."""
    import viz.server
    from tests.engine.test_registry import manifest

    root = tmp_path / "runs"
    registry = Registry(root)
    marked = "20261101-010000-0001"
    registry.register(manifest(marked))
    registry.run_dir(marked).mkdir()
    registry.mark_for_cleanup(marked)

    class FakeLoop:
        def start(self) -> None:  # "serving": until the cleaner has done its work
            deadline = time.monotonic() + 10
            while registry.run_dir(marked).exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    class FakeServer:
        port = 5999
        io_loop = FakeLoop()

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    threads_before = {t.name for t in threading.enumerate()}
    monkeypatch.setattr(viz.server, "make_server", lambda *args, **kwargs: FakeServer())
    viz.server.serve_dashboard(root, cleanup_interval_s=0.05)
    assert not registry.run_dir(marked).exists()
    assert Registry(root).list() == []
    assert "amdsim-cleaner" not in {t.name for t in threading.enumerate()} - threads_before


# -- the ETA: at the recent rate, none once stopped (issue case 7) ---------------------


@pytest.mark.parametrize("status", ["cancelled", "failed", "completed"])
def test_a_stopped_run_shows_no_eta(context, status):
    page = RunPage(context, StateManager())
    page.show_sample(sample(status=status, eta_s=37.5))
    assert "ETA -" in page.status.object


def test_the_eta_shown_after_start_up_is_within_ten_percent_of_the_time_left(context):
    """Issue case 7: recorded samples of 5 s start-up, then 10,000 patients/s."""
    from tests.engine.test_sampling import STARTUP_S, recorded_run

    page = RunPage(context, StateManager())
    checked = 0
    for true_left, recorded in recorded_run():
        page.show_sample(recorded)
        if recorded.elapsed_s >= STARTUP_S + 15:
            shown_s = float(re.search(r"ETA ([\d,]+) s", page.status.object)[1].replace(",", ""))
            assert shown_s == pytest.approx(true_left, rel=0.10, abs=0.5)
            checked += 1
    assert checked > 100


# -- a resumed or restarted run: the Run page follows the new process (case 1) ---------


class FakeRunProcess:
    """A run process started by the launcher that does nothing until the test ends it."""

    def __init__(self, arguments: list[str], **_options) -> None:
        self.arguments = arguments
        self.pid = 0
        self.returncode: int | None = None
        self._ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._ended.wait(timeout)
        return self.returncode

    def end(self, code: int) -> None:
        self.returncode = code
        self._ended.set()


@pytest.fixture
def fake_processes(monkeypatch):
    """The processes the launcher starts, as `FakeRunProcess`es; all ended after the test."""
    import viz.launcher

    started: list[FakeRunProcess] = []

    def popen(arguments, **options):
        started.append(FakeRunProcess(arguments, **options))
        return started[-1]

    monkeypatch.setattr(viz.launcher.subprocess, "Popen", popen)
    yield started
    for process in started:
        process.end(0 if process.returncode is None else process.returncode)


@pytest.fixture
def stopped_run(streamed_run, tmp_path):
    """A copy of the streamed run under a fresh runs root: (root, run dir, its manifest)."""
    import shutil

    root = tmp_path / "runs"
    run_dir = root / streamed_run[1].name
    shutil.copytree(streamed_run[1], run_dir)
    return root, run_dir, read_manifest(run_dir / "manifest.json")


def rewrite_manifest(run_dir: Path, manifest, **changes):
    """Write the run's manifest and registry entry as its process would."""
    import msgspec

    from engine.manifest import write_manifest

    manifest = msgspec.structs.replace(manifest, **changes)
    write_manifest(run_dir / "manifest.json", manifest)
    Registry(run_dir.parent).update(manifest)
    return manifest


def refresh_until(refresh, condition, timeout_s: float = 10.0) -> None:
    """Call `refresh` (a page's periodic callback) until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        refresh()
        if condition():
            return
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.05)


@pytest.mark.parametrize(
    ("old_status", "old_error", "button", "verb"),
    [
        ("cancelled", "cancel requested", "Resume", "resume"),
        ("completed", "", "Restart", "--restart"),
    ],
)
def test_a_resumed_or_restarted_run_shows_its_new_process_not_the_old_end(
    stopped_run, fake_processes, old_status, old_error, button, verb
):
    """Issue case 1: the Run page follows the new process from the start to its own end."""
    import psutil

    from ipc.metrics import MetricsPublisher

    root, run_dir, finished = stopped_run
    run_id = run_dir.name
    old = rewrite_manifest(run_dir, finished, status=old_status, error=old_error)
    context = ServerContext(runs_root=root)
    session = DashboardSession(context)
    page = session.run_page
    try:
        session.follow(run_id)  # the page saw the earlier process end
        refresh_until(page.refresh, lambda: old_status in page.status.object)

        session.runs_page.refresh()
        session.runs_page.select(run_id)
        session.runs_page.buttons[button].clicks += 1
        if session.runs_page.confirmation.visible:  # Restart asks first
            assert session.runs_page.confirm()
        assert verb in fake_processes[-1].arguments, shown(session.runs_page.message.object)
        for _ in range(5):  # the new process has not rewritten the manifest yet
            page.refresh()
            assert old_status not in page.status.object and "starting" in page.status.object
            assert not page.message.visible and not page.cancel_button.disabled

        with tempfile.TemporaryDirectory(prefix="amdsim-test-") as folder:
            socket_path = Path(folder) / "metrics.sock"
            with MetricsPublisher(socket_path) as publisher:
                rewrite_manifest(
                    run_dir,
                    old,
                    status="running",
                    error="",
                    metrics_address=str(socket_path),
                    supervisor_pid=os.getpid(),
                    supervisor_started=psutil.Process().create_time(),
                )
                publisher.publish(sample(run_id=run_id, patients_done=2_000, patients_total=5_000))
                refresh_until(page.refresh, lambda: "2,000 / 5,000" in page.counts.object)
                assert "running" in page.status.object and "ETA" in page.status.object
                assert page.progress.value == 40
                rewrite_manifest(run_dir, finished)
            fake_processes[-1].end(0)
        refresh_until(page.refresh, lambda: page.cancel_button.disabled)
        assert "completed" in page.status.object and page.progress.value == 100
        assert f"run {run_id} completed" in shown(page.message.object)
    finally:
        session.close()
        context.live.stop_all()


def test_a_resume_that_exits_before_it_starts_says_so_not_the_old_end(stopped_run, fake_processes):
    root, run_dir, finished = stopped_run
    rewrite_manifest(run_dir, finished, status="cancelled", error="cancel requested")
    context = ServerContext(runs_root=root)
    page = RunPage(context, StateManager())
    try:
        context.launcher.resume(run_dir.name)
        page.follow_existing(run_dir)
        page.refresh()
        assert "starting" in page.status.object
        fake_processes[-1].end(2)
        refresh_until(page.refresh, lambda: "exited with code 2" in page.status.object)
        assert "cancelled" not in page.status.object
        assert f".logs/{run_dir.name}.log" in shown(page.message.object)
    finally:
        context.live.stop_all()


# -- running runs' live progress in the Runs table (case 9) ----------------------------


def test_runs_table_shows_a_running_runs_live_progress(streamed_run, tmp_path):
    """Issue case 9: a running run's row shows patients done, visits and bytes written so far."""
    root, run_dir = streamed_run
    entry = Registry(root).get(run_dir.name)
    running = msgspec_replace(entry, status="running", visits=0, bytes_on_disk=0)
    live = {
        entry.run_id: sample(
            run_id=entry.run_id,
            patients_done=1_000,
            patients_total=4_000,
            visits_written=23_456,
            bytes_written=3 * MiB,
        )
    }
    row = entries_frame([running], live).iloc[0]
    assert row["progress"] == "1,000 / 4,000 (25 %)"
    assert row["visits"] == 23_456 and row["MiB"] == 3.0
    finished = entries_frame([entry], live).iloc[0]  # a finished run shows its own totals
    assert finished["progress"] == "" and finished["visits"] == entry.visits


def test_runs_page_refresh_follows_a_running_runs_samples(stopped_run):
    """The page's periodic refresh reads each running run's latest sample from its watch."""
    import psutil

    from ipc.metrics import MetricsPublisher

    root, run_dir, finished = stopped_run
    context = ServerContext(runs_root=root)
    page = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    try:
        with tempfile.TemporaryDirectory(prefix="amdsim-test-") as folder:
            socket_path = Path(folder) / "metrics.sock"
            with MetricsPublisher(socket_path) as publisher:
                rewrite_manifest(
                    run_dir,
                    finished,
                    status="running",
                    totals=type(finished.totals)(),
                    bytes_on_disk=0,
                    metrics_address=str(socket_path),
                    supervisor_pid=os.getpid(),
                    supervisor_started=psutil.Process().create_time(),
                )
                for done, visits in [(1_000, 20_000), (3_000, 61_000)]:
                    publisher.publish(
                        sample(
                            run_id=run_dir.name,
                            patients_done=done,
                            patients_total=5_000,
                            visits_written=visits,
                            bytes_written=done * 1024,
                        )
                    )
                    refresh_until(
                        page.refresh, lambda v=visits: page.table.value.iloc[0]["visits"] == v
                    )
                row = page.table.value.iloc[0]
                assert row["status"] == "running" and row["progress"] == "3,000 / 5,000 (60 %)"
                assert row["MiB"] == round(3_000 * 1024 / MiB, 1)
                rewrite_manifest(run_dir, finished)
        refresh_until(page.refresh, lambda: page.table.value.iloc[0]["status"] == "completed")
        assert page.table.value.iloc[0]["visits"] == finished.visits
    finally:
        context.live.stop_all()
