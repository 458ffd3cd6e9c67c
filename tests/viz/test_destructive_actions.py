"""Delete and Restart on the Runs page ask first, naming the run and what is lost; sessions
that had the run open then say it was deleted, never the file system's `[Errno 2]` path."""

from __future__ import annotations

import re
import time

import msgspec
import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.registry import Registry
from engine.run_dir import new_run_id
from tests.helpers import V1_PROTOCOL
from tests.viz.test_components import shown
from viz.app import DashboardSession
from viz.context import ServerContext
from viz.run_page import RunPage
from viz.runs_page import RunsPage
from viz.url_state import View


@pytest.fixture
def run(tmp_path):
    """A finished on-disk run whose rows span several part files (lookups open them lazily)."""
    root = tmp_path / "runs"
    run_dir = root / new_run_id()
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=6_000, years=3, seed=4),
        run_dir,
        PipelineOptions(workers=1, roll_bytes=32 << 10, row_group_patients=256),
    )
    assert len(list(run_dir.glob("visits/part-*.parquet"))) >= 2
    return ServerContext(runs_root=root), run_dir.name


def settled(run_page) -> None:
    """Refresh `run_page` once its watch has seen that the (finished) run is over."""
    deadline = time.monotonic() + 10
    while not run_page.watch.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run_page.watch.ended
    run_page.refresh()


def _runs_page(context: ServerContext, selected: str) -> RunsPage:
    page = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    page.refresh()
    page.select(selected)
    return page


def test_delete_asks_first_naming_the_run_and_what_is_lost(run):
    """Delete shows a question with the run, its patients and size; Cancel keeps the run."""
    context, run_id = run
    entry = Registry(context.runs_root).get(run_id)
    page = _runs_page(context, run_id)
    page.delete_selected()
    assert page.confirmation.visible
    size = f"{entry.bytes_on_disk / 2**20:,.1f} MiB"
    assert shown(page.question.object) == (
        f"Delete run {run_id}: its 6,000 patients and {size} of results are removed; "
        "this cannot be undone."
    )
    assert Registry(context.runs_root).get(run_id)  # asking deleted nothing
    page.dismiss()
    assert not page.confirmation.visible
    assert shown(page.message.object) == f"nothing was done to {run_id}"
    assert (context.runs_root / run_id).is_dir()
    page.confirm()  # the question is gone: Confirm does nothing
    assert (context.runs_root / run_id).is_dir()

    page.delete_selected()
    page.select("")  # the selection changing after the question does not matter
    assert page.confirm()
    assert shown(page.message.object) == f"deleted {run_id}"
    assert not (context.runs_root / run_id).exists() and page.table.value.empty


def test_restart_asks_first_and_restarts_only_on_confirm(run, monkeypatch):
    """Restart's question says the results are discarded; Confirm launches the restart."""
    context, run_id = run
    restarted, followed = [], []
    monkeypatch.setattr(context.launcher, "restart", restarted.append)
    page = RunsPage(context, on_open=lambda _: None, on_follow=followed.append)
    page.refresh()
    page.select(run_id)
    page.restart_selected()
    question = shown(page.question.object)
    assert question.startswith(f"Restart run {run_id}: its 6,000 patients and ")
    assert "are discarded and it runs again from the start (6,000 patients" in question
    assert not restarted
    assert page.confirm()
    assert restarted == followed == [run_id]


def test_a_running_run_is_refused_before_asking(run, monkeypatch):
    """Deleting a running run says to cancel it first; no question is shown."""
    context, run_id = run
    page = _runs_page(context, run_id)
    entry = Registry(context.runs_root).get(run_id)
    running = msgspec.structs.replace(entry, status="running")
    monkeypatch.setattr(Registry, "get", lambda self, _: running)
    page.delete_selected()
    assert not page.confirmation.visible
    assert shown(page.message.object) == f"run {run_id} is still running; cancel it first"


def test_a_session_with_the_run_open_says_it_was_deleted_not_errno(run):
    """Another session's Results page (open run, looked-up patient) and Run page say the
    run was deleted; no `[Errno 2]` and no path."""
    context, run_id = run
    other = DashboardSession(context)
    other.restore(View(page="results", run=run_id, patient=3))
    assert "Patient 3" in shown(other.results_page.patient_summary.object)
    follower = RunPage(context, other.state)
    follower.follow_existing(context.runs_root / run_id)
    settled(follower)  # the run is over: its final status, from the manifest
    assert "completed" in shown(follower.status.object)

    deleting = _runs_page(context, run_id)
    deleting.delete_selected()
    assert deleting.confirm()

    other.results_page.lookup(5_900)  # a part file the reader has not opened yet
    said = shown(other.results_page.patient_summary.object)
    assert said == f"Patient 5900: run {run_id} was deleted: its results are no longer available"
    assert shown(other.results_page.message.object) == (
        f"run {run_id} was deleted: its results are no longer available"
    )
    assert run_id not in other.state and other.results_page.key is None
    assert not other.results_page.chart_area.visible  # no charts of a run that is gone
    assert not other.results_page.open(run_id)  # Open again: the same words
    assert shown(other.results_page.message.object) == (
        f"run {run_id} was deleted: its results are no longer available"
    )
    follower.refresh()
    assert shown(follower.status.object) == (
        f"{run_id}: run {run_id} was deleted: its results are no longer available"
    )
    for text in (
        other.results_page.message.object,
        other.results_page.patient_summary.object,
        follower.status.object,
        follower.message.object,
    ):
        assert not re.search(r"Errno|/", shown(text)), text
