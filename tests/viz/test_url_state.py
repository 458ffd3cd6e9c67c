"""The page state lives in the URL: a reload, a bookmark or a shared link restores the page,
the run the Run page follows, and the Results page's open run and looked-up patient."""

from __future__ import annotations

import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from engine.run_dir import new_run_id
from tests.helpers import V1_PROTOCOL
from tests.viz.test_components import shown
from tests.viz.test_destructive_actions import settled
from viz.app import DashboardSession
from viz.context import ServerContext
from viz.url_state import UrlWriter, View


def test_each_page_writes_its_view_into_the_url(streamed_run_context):
    """The open tab, the followed run, the open run and the looked-up patient make the query."""
    context, run_id = streamed_run_context
    session = DashboardSession(context)
    assert session.view().search() == "?page=run"
    session.show_results(run_id)
    session.results_page.lookup(7)
    assert session.view().search() == f"?page=results&run={run_id}&patient=7"
    session.tabs.active = 1
    assert session.url.last == "?page=runs"  # a tab change is written at once
    session.follow(run_id)
    assert session.url.last == f"?page=run&run={run_id}"


def test_a_reloaded_results_url_reopens_the_run_and_the_patient(streamed_run_context):
    """`?page=results&run=ID&patient=N` in a new session: Results tab, run open, patient shown."""
    context, run_id = streamed_run_context
    session = DashboardSession(context)
    session.restore(View.from_search(f"?page=results&run={run_id}&patient=5"))
    assert session.tabs.active == 2
    assert session.results_page.key == run_id
    assert session.results_page.patient_id.value == 5
    assert shown(session.results_page.patient_summary.object).startswith("Patient 5: ")
    assert session.view().search() == f"?page=results&run={run_id}&patient=5"


def test_a_reloaded_run_url_follows_the_run_again(streamed_run_context):
    """`?page=run&run=ID`: the Run page follows that run, not "No run yet."."""
    context, run_id = streamed_run_context
    session = DashboardSession(context)
    session.restore(View.from_search(f"?page=run&run={run_id}"))
    settled(session.run_page)
    assert session.tabs.active == 0 and session.run_page.run_id == run_id
    assert shown(session.run_page.status.object) == f"{run_id}: completed"


def test_a_link_to_a_deleted_run_says_it_was_deleted(tmp_path):
    """A reload or link after Delete: both pages say the run was deleted, without a path."""
    context = ServerContext(runs_root=tmp_path / "runs")
    run_dir = context.runs_root / new_run_id()
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=300, years=1, seed=1),
        run_dir,
        PipelineOptions(workers=1),
    )
    run_id = run_dir.name
    deleting = DashboardSession(context)
    deleting.runs_page.refresh()
    deleting.runs_page.select(run_id)
    deleting.runs_page.delete_selected()
    assert deleting.runs_page.confirm()
    session = DashboardSession(context)
    session.restore(View.from_search(f"?page=run&run={run_id}"))
    deleted = f"run {run_id} was deleted: its results are no longer available"
    assert shown(session.run_page.status.object) == f"{run_id}: {deleted}"
    other = DashboardSession(context)
    other.restore(View.from_search(f"?page=results&run={run_id}&patient=1"))
    assert other.tabs.active == 2 and shown(other.results_page.message.object) == deleted


def test_a_link_to_a_run_never_here_says_so_without_a_path(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    run_id = "20261101-120000-abcd"
    session = DashboardSession(context)
    session.restore(View.from_search(f"?page=run&run={run_id}"))
    assert shown(session.run_page.message.object) == (
        f"run {run_id} is not here (deleted, or never run here)"
    )
    session.restore(View.from_search(f"?page=results&run={run_id}"))
    assert shown(session.results_page.message.object) == (
        f"cannot open {run_id}: no run of that id is here (deleted, or never run here)"
    )


@pytest.mark.parametrize(
    ("search", "page", "run", "patient", "problem"),
    [
        ("", "run", None, None, None),
        (
            "?page=Results&run=20261101-120000-abcd&patient=12",
            "results",
            "20261101-120000-abcd",
            12,
            None,
        ),
        ("?page=admin", "run", None, None, "the link's page 'admin' is not one of run, runs"),
        (
            "?page=run&run=../../etc",
            "run",
            None,
            None,
            "the link's run: '../../etc' is not a run id",
        ),
        ("?page=results&patient=-3", "results", None, None, "the link's patient '-3' is not"),
    ],
)
def test_a_query_from_anyone_is_checked(search, page, run, patient, problem):
    """A bad page, run id (a path, say) or patient is dropped with a note, never an error."""
    view = View.from_search(search)
    assert (view.page, view.run, view.patient) == (page, run, patient)
    if problem is None:
        assert view.problems == ()
    else:
        assert problem in view.problems[0]


def test_a_bad_link_is_shown_on_the_run_page(tmp_path):
    session = DashboardSession(ServerContext(runs_root=tmp_path / "runs"))
    session.restore(View.from_search("?page=run&run=../../etc"))
    assert "is not a run id" in shown(session.run_page.message.object)
    assert shown(session.run_page.status.object) == "No run yet."


def test_the_url_is_written_only_when_the_view_changes():
    class Location:
        search = ""

    location = Location()
    writer = UrlWriter(location)
    assert writer.write(View(page="runs")) and location.search == "?page=runs"
    location.search = "?page=runs&stale=1"
    assert not writer.write(View(page="runs"))  # unchanged: no history entry per refresh
    assert writer.write(View(page="results", run="20261101-120000-abcd"))
    assert location.search == "?page=results&run=20261101-120000-abcd"


@pytest.fixture(scope="module")
def streamed_run_context(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_dir = root / new_run_id()
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=3_000, years=2, seed=3),
        run_dir,
        PipelineOptions(workers=1),
    )
    return ServerContext(runs_root=root), run_dir.name
