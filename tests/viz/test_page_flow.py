"""From a run to its results in one click, and no page that shows nothing without saying why:
Start is off while the page's run goes, Open results appears when it completes, the Results
page opens on the newest run (never on empty charts), an empty Runs table says why. Without a
browser (the browser's side is in test_browser.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.run_dir import new_run_id
from engine.state_manager import StateManager
from tests.helpers import V1_PROTOCOL
from tests.viz.test_components import shown
from viz.app import TAB_NAMES, DashboardSession
from viz.context import ServerContext
from viz.run_page import RunPage
from viz.runs_page import RunsPage


@pytest.fixture
def context(tmp_path):
    return ServerContext(runs_root=tmp_path / "runs")


def _completed_run(context: ServerContext, seed: int = 1) -> Path:
    run_dir = context.runs_root / new_run_id()
    params = RunParameters(n_patients=3_000, years=1, seed=seed, shard_size=1_000)
    run_pipeline(load_protocol(V1_PROTOCOL), params, run_dir, PipelineOptions(workers=1))
    return run_dir


def _refresh_until_ended(page: RunPage, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not (page.watch.ended and page._reported_end):
        assert time.monotonic() < deadline, "the page never saw the run's end"
        page.refresh()
        time.sleep(0.05)


def test_start_is_off_while_the_followed_run_goes_and_open_results_appears_at_its_end(context):
    run_dir = _completed_run(context)
    opened = []
    page = RunPage(context, StateManager(), on_open=opened.append)
    assert not page.start_button.disabled and not page.open_results_button.visible
    page.follow_existing(run_dir)
    assert page.start_button.disabled and not page.cancel_button.disabled
    assert not page.open_results_button.visible
    try:
        _refresh_until_ended(page)
    finally:
        page.watch.stop()
    assert not page.start_button.disabled and page.cancel_button.disabled
    assert page.open_results_button.visible
    assert page.open_results() and opened == [run_dir.name]


def test_open_results_after_a_small_run_shows_it_on_the_results_page(context):
    session = DashboardSession(context)
    session.run_page.patients.value = 300
    key = session.run_page.start()
    session.run_page.join(timeout_s=60)
    assert key is not None and session.run_page.open_results_button.visible
    session.run_page.open_results_button.clicks += 1  # as the browser's click does
    assert TAB_NAMES[session.tabs.active] == "Results"
    assert session.results_page.key == key and session.results_page.chart_area.visible
    session.close()


def test_the_results_page_opens_on_the_newest_run_never_on_empty_charts(context):
    older, newer = _completed_run(context, seed=1), _completed_run(context, seed=2)
    session = DashboardSession(context)
    results = session.results_page
    assert results.key is None and not results.chart_area.visible
    assert "No run is open" in results.summary.object
    session.tabs.active = TAB_NAMES.index("Results")
    assert results.key == newer.name and results.chart_area.visible
    assert results.run_select.values[:2] == [newer.name, older.name]
    results.open(older.name)  # a run the user chose stays open when the tab is shown again
    session.tabs.active = TAB_NAMES.index("Runs")
    session.tabs.active = TAB_NAMES.index("Results")
    assert results.key == older.name
    session.close()


def test_with_no_run_the_results_tab_says_so(context):
    session = DashboardSession(context)
    session.tabs.active = TAB_NAMES.index("Results")
    results = session.results_page
    assert results.key is None and not results.chart_area.visible
    assert "No run is open" in results.summary.object
    session.close()


def test_an_empty_runs_table_says_why(context):
    page = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    page.refresh()
    assert shown(page.empty_note.object) == "No runs yet: start one on the Run page."
    _completed_run(context)
    page.refresh()
    assert page.empty_note.object == "" and len(page.table.value) == 1
    page.search.value_input = "no-such-run"
    assert shown(page.empty_note.object) == "No runs match “no-such-run”."
    page.status_filter.value = "failed"
    assert shown(page.empty_note.object) == "No runs match “no-such-run” and status failed."
