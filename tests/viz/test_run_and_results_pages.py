"""The Run and Results pages refuse what they cannot do and say so: numbers out of range, a
bad upload after a good one, a run that did not complete, live statistics with nothing in them
yet. Without a browser (the browser's side is in test_browser.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine import run_simulation
from engine.errors import WorkerCrashedError
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol, resolve_protocol_path
from engine.pipeline import PipelineOptions, run_pipeline
from engine.run_dir import RunPaths, new_run_id
from engine.state_manager import StateManager
from engine.stats.live import read_live_statistics, write_live_statistics
from engine.stats.shard_stats import Counts
from tests.helpers import V1_PROTOCOL
from tests.viz.test_components import shown
from viz.context import ServerContext
from viz.protocol_choice import UPLOADED
from viz.results_page import ResultsPage
from viz.run_page import RunPage

DEFAULT = DEFAULT_PROTOCOL
UPLOADABLE = "aflibercept_treat_and_extend"  # a visit-based protocol, as uploads are


@pytest.fixture
def context(tmp_path):
    return ServerContext(runs_root=tmp_path / "runs")


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run that failed part-way: a shard of the second block of 32 always fails, so the
    first block is on disk."""
    root = tmp_path_factory.mktemp("runs")
    run_dir = root / new_run_id()
    failing = PipelineOptions(
        workers=1,
        checkpoint_every=8_000,
        worker_fail_shard=40,
        worker_fail_attempts=99,
        max_attempts=1,
    )
    with pytest.raises(WorkerCrashedError):
        run_pipeline(
            load_protocol(V1_PROTOCOL),
            RunParameters(n_patients=64_000, years=2, seed=3, shard_size=1_000),
            run_dir,
            failing,
        )
    return root, run_dir


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("years", 0.05, "years must be at least 0.1, got 0.05"),
        ("years", None, "years: enter a number"),
        ("patients", 0, "patients must be at least 1, got 0"),
        ("seed", -1, "seed must be at least 0, got -1"),
        ("workers", 0, "workers must be at least 1, got 0"),
    ],
)
def test_a_number_below_the_forms_minimum_is_refused_and_starts_nothing(
    context, field, value, message
):
    page = RunPage(context, StateManager())
    widget = getattr(page, field)
    assert widget.start is None and widget.end is None, "the browser would clamp it silently"
    widget.value = value
    assert page.start() is None
    assert shown(page.message.object) == message and page.message.alert_type == "danger"
    assert not context.launcher.launched and page.run_id is None


def test_a_patient_id_outside_the_run_is_refused_not_clamped(context):
    state = StateManager()
    state.put("small", run_simulation(load_protocol(V1_PROTOCOL), 300, years=1, seed=2))
    page = ResultsPage(context, state)
    assert page.open("small")
    assert page.patient_id.start is None and page.patient_id.end is None
    assert not page.lookup(300)
    assert (
        shown(page.patient_summary.object) == "Patient 300: no such patient; ids run from 0 to 299"
    )
    assert not page.lookup(-1) and "ids run from 0 to 299" in page.patient_summary.object
    assert not page.lookup(None)
    assert shown(page.patient_summary.object) == "Enter a patient id from 0 to 299."
    assert page.lookup(299) and "injections, VA" in page.patient_summary.object
    state.cleanup()


def test_an_invalid_upload_sets_aside_the_earlier_valid_one(context):
    page = RunPage(context, StateManager())
    good = resolve_protocol_path(UPLOADABLE).read_bytes()
    assert page.receive_upload(good, "good.yaml") and page.protocol.value == UPLOADED
    bad = good.replace(b"0.85", b"0.95", 1)
    assert not page.receive_upload(bad, "bad.yaml")
    text = shown(page.message.object)
    assert text.startswith("bad.yaml: $.disease_transitions.STABLE"), text
    assert text.endswith(f"(the earlier upload good.yaml is set aside; protocol: {DEFAULT})")
    assert page.message.alert_type == "danger"
    assert page.protocol.value == DEFAULT and UPLOADED not in page.protocol.values
    assert page._selected_protocol()[1] == resolve_protocol_path(DEFAULT)


def test_an_invalid_upload_keeps_a_bundled_protocol_the_user_chose(context):
    page = RunPage(context, StateManager())
    good = resolve_protocol_path(UPLOADABLE).read_bytes()
    assert page.receive_upload(good, "good.yaml")
    other = next(o for o in page.protocol.values if o not in (UPLOADED, DEFAULT))
    page.protocol.value = other
    assert not page.receive_upload(b"a: [", "broken.yaml")
    assert page.protocol.value == other and UPLOADED not in page.protocol.values
    assert shown(page.message.object).endswith(f"set aside; protocol: {other})")


def test_a_failed_run_shows_it_is_partial_and_resumes_from_the_results_page(failed_run):
    root, run_dir = failed_run
    context = ServerContext(runs_root=root)
    resumed, followed = [], []
    context.launcher.resume = resumed.append  # the Runs page's launcher, without a process
    page = ResultsPage(context, StateManager(), on_follow=followed.append)
    page.refresh_choices()
    assert run_dir.name in page.run_select.values, "a partial run with patients is listed"
    assert page.open(run_dir.name)
    on_disk = page.state.get(run_dir.name).patient_count
    assert 0 < on_disk < 64_000
    assert page.partial.visible and page.resume_button.visible
    text = shown(page.partial.object)
    assert text.startswith("failed (") and text.endswith(
        f"partial: {on_disk:,} of 64,000 patients"
    ), text
    assert page.resume()
    assert resumed == followed == [run_dir.name]
    assert not page.resume_button.visible and run_dir.name not in page.state


def test_a_completed_run_shows_no_partial_note(context):
    state = StateManager()
    state.put("small", run_simulation(load_protocol(V1_PROTOCOL), 200, years=1, seed=2))
    page = ResultsPage(context, state)
    assert page.open("small")
    assert not page.partial.visible and not page.resume_button.visible
    assert not page.resume() and shown(page.message.object).startswith("no run 'small'")
    state.cleanup()


def test_early_live_statistics_show_nothing_and_log_no_error(context, caplog):
    """Before its first rows a run's writer publishes empty counts: nothing to chart yet."""
    run_dir = context.runs_root / new_run_id()
    run_dir.mkdir(parents=True)
    paths = RunPaths(run_dir)
    write_live_statistics(paths, Counts(), horizon_days=365, shards=0)
    assert read_live_statistics(paths) is None
    page = RunPage(context, StateManager())
    page.follow_existing(run_dir)
    try:
        with caplog.at_level(logging.WARNING):
            page.refresh()
        assert not caplog.records and page.chart_source.object == ""
        assert page.chart.source.data["month"] == []
        counts = run_simulation(load_protocol(V1_PROTOCOL), 100, years=1, seed=1)
        write_live_statistics(paths, counts.statistics().counts, 365, shards=1)
        page._last_live_stats = 0.0  # the page reads live statistics at most once a second
        page.refresh()
        assert page.chart_source.object == "live statistics: 100 patients so far"
        assert page.chart.source.data["month"]
    finally:
        page.watch.stop()
