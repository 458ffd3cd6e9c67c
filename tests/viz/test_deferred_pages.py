"""A session builds only the page it opens on; the others are built when opened or after the
first draw, hidden pages are brought up to date when opened, the protocol editor's fields
arrive when it is opened, and protocols are read once per file version (all for a faster
first load: `perf/bench_dashboard_pages.py`)."""

from __future__ import annotations

import os
import shutil

import pytest

from engine.errors import ProtocolError
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.pipeline import PipelineOptions, run_pipeline
from engine.run_dir import new_run_id
from engine.state_manager import StateManager
from tests.helpers import V1_PROTOCOL
from viz.app import COMPARE, RESULTS, RUN, RUNS, SYSTEM, TAB_NAMES, DashboardSession
from viz.context import ServerContext
from viz.protocol_cache import cached_protocol
from viz.run_page import RunPage
from viz.url_state import View


def test_a_new_session_builds_only_the_page_it_opens_on(tmp_path):
    session = DashboardSession(ServerContext(runs_root=tmp_path / "runs"))
    session.pages.fill_open()
    assert session.pages.built(RUN) and session.pages.filled(RUN)
    assert not any(session.pages.built(index) for index in (RUNS, RESULTS, COMPARE, SYSTEM))
    session.refresh_fast()
    session.refresh_slow()  # periodic refreshes build nothing
    assert not any(session.pages.built(index) for index in (RUNS, RESULTS, COMPARE, SYSTEM))
    session.tabs.active = SYSTEM  # a click on a tab whose page has not arrived yet
    assert session.pages.filled(SYSTEM)
    assert "Dashboard process" in session.system_page.memory.object  # up to date at once
    session.pages.fill_all()  # what the server does, page by page, after the first draw
    assert all(session.pages.filled(index) for index in range(len(TAB_NAMES)))


def test_a_link_to_results_builds_the_results_page_first(tmp_path):
    session = DashboardSession(ServerContext(runs_root=tmp_path / "runs"))
    session.restore(View.from_search("?page=results"))
    session.pages.fill_open()
    assert session.pages.filled(RESULTS) and not session.pages.built(RUN)


def test_the_runs_page_is_current_when_opened_though_not_refreshed_while_hidden(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    session = DashboardSession(context)
    session.tabs.active = RUNS
    assert session.runs_page.table.value.empty
    session.tabs.active = RUN
    run_dir = context.runs_root / new_run_id()
    run_pipeline(
        load_protocol(V1_PROTOCOL),
        RunParameters(n_patients=200, years=1, seed=1),
        run_dir,
        PipelineOptions(workers=1),
    )
    session.refresh_fast()
    assert session.runs_page.table.value.empty  # hidden: not re-listed every 500 ms
    session.tabs.active = RUNS
    assert list(session.runs_page.table.value["run_id"]) == [run_dir.name]


def test_the_editor_and_the_memory_sparkline_arrive_when_needed(tmp_path):
    page = RunPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())
    editor = page.editor
    assert editor.layout.collapsed and not editor.layout.objects
    page.protocol.value = "ranibizumab_prn_monthly"  # closed: nothing is copied yet
    assert editor.numbers["max_interval_days"].value == 0
    editor.layout.collapsed = False
    assert editor.file_name in editor.layout.objects
    chosen = load_protocol("ranibizumab_prn_monthly")
    assert editor.numbers["max_interval_days"].value == chosen.max_interval_days
    page.protocol.value = V1_PROTOCOL  # open: a new choice is copied at once
    assert editor.numbers["max_interval_days"].value == load_protocol(V1_PROTOCOL).max_interval_days
    assert page.memory.figure is None  # no run yet: no empty sparkline
    page.memory.show(2**30, 2**32, 1.0, page.context.monitor.thresholds)
    assert page.memory.figure is not None and page.memory.source.data["mib"] == [1024.0]


def test_a_protocol_is_read_again_when_its_file_changes_and_errors_are_not_kept(tmp_path):
    path = tmp_path / "mine.yaml"
    shutil.copy(resolve_protocol_path(V1_PROTOCOL), path)  # visit-based: one file
    first = cached_protocol(path)
    assert cached_protocol(path) is first  # unchanged: not read again
    text = path.read_text(encoding="utf-8")
    renamed = text.replace(f"name: {first.name}", "name: Changed by an editor", 1)
    assert renamed != text, "the test protocol's name line was not found"
    replacement = tmp_path / "mine.yaml.tmp"
    replacement.write_text(renamed, encoding="utf-8")
    os.replace(replacement, path)  # how editors (and viz.protocol_editor) save
    assert cached_protocol(path).name == "Changed by an editor"
    path.write_text("name: [broken", encoding="utf-8")
    for _ in range(2):  # the error is said each time, not remembered as a protocol
        with pytest.raises(ProtocolError):
            cached_protocol(path)
