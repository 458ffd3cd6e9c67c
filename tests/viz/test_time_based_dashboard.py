"""The dashboard with the bundled time-based protocol, without a browser: the Run form starts
an in-memory run and a streaming run of it, and the Results page shows their outcome table
(the numbers of the run's own statistics)."""

from __future__ import annotations

import re

import pytest

from engine.model.protocol_loader import bundled_protocol_names, load_protocol
from engine.results import ParquetResults
from engine.state_manager import StateManager
from viz.context import ServerContext
from viz.results_page import ResultsPage
from viz.run_page import RunPage

BUNDLED = "time_based_uncalibrated_treat_and_extend"


@pytest.fixture
def context(tmp_path):
    return ServerContext(runs_root=tmp_path / "runs")


def _form(context: ServerContext, state: StateManager, patients: int) -> RunPage:
    page = RunPage(context, state)
    assert BUNDLED in page.protocol.options and BUNDLED in bundled_protocol_names()
    page.protocol.value = BUNDLED
    page.patients.value = patients
    page.years.value = 5.0
    page.seed.value = 4
    page.workers.value = 1
    return page


def _assert_outcome_table_shown(page: ResultsPage, statistics) -> None:
    html = page.outcomes.object
    assert "Outcome table" in html and "LOCF" in html and "per 100 patient-years" in html
    table = statistics.outcome_table()
    assert table is not None
    month_12 = next(r for r in table.rows if r.month == 12 and r.kind == "locf")
    # The 12-month LOCF row's patient count is on the page as the run computed it.
    assert re.search(rf"\b{month_12.patients:,}\b|\b{month_12.patients}\b", html)
    assert {r.month for r in table.rows} >= {12, 24, 60}


def test_the_form_runs_the_time_based_protocol_in_memory_and_results_show_its_table(context):
    state = StateManager()
    page = _form(context, state, 400)
    key = page.start()
    page.join(timeout_s=120)
    assert key is not None, page.message.object
    assert "completed in memory" in page.status.object
    results = state.get(key)
    assert results.protocol == load_protocol(BUNDLED) and results.patient_count == 400
    assert type(results.protocol).__name__ == "TimeBasedProtocol"
    view = ResultsPage(context, state)
    assert view.open(key)
    _assert_outcome_table_shown(view, results.statistics())
    assert view.lookup(7) and "Patient 7" in view.patient_summary.object
    state.cleanup()


def test_the_form_starts_a_streaming_time_based_run_and_results_show_its_table(context):
    state = StateManager()
    page = _form(context, state, 3_000)
    run_id = page.start()
    assert run_id is not None, page.message.object
    assert "started run" in page.message.object
    launched = context.launcher.launched[run_id]
    assert launched.process.wait(timeout=120) == 0, launched.log.read_text()
    with ParquetResults(launched.run_dir) as results:
        assert results.manifest.format_version == 2
        assert results.manifest.parameters.n_patients == 3_000
        assert type(results.protocol).__name__ == "TimeBasedProtocol"
        statistics = results.statistics()
    view = ResultsPage(context, state)
    assert view.open(run_id), view.message.object
    assert "On disk" in view.badge.object
    _assert_outcome_table_shown(view, statistics)
    assert view.lookup(2_999) and "Patient 2999" in view.patient_summary.object.replace(",", "")
    state.cleanup()
