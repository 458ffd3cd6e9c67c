"""A small in-memory run from the dashboard outlives the session that made it: after a reload
(a new session) it is still on the Results page, by choice or by link, until eight newer ones
push it out."""

from __future__ import annotations

from engine import run_simulation
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from viz.app import TAB_NAMES, DashboardSession
from viz.context import ServerContext
from viz.recent_memory_runs import KEEP, RecentMemoryRuns
from viz.url_state import View


def test_a_small_run_is_still_there_after_a_reload(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    first = DashboardSession(context)
    first.run_page.patients.value = 300
    key = first.run_page.start()
    first.run_page.join(timeout_s=60)
    first.close()  # the tab reloads: its session and what it held are gone
    assert key not in first.state
    again = DashboardSession(context)
    again.tabs.active = TAB_NAMES.index("Results")
    results = again.results_page
    assert results.key == key and "In memory" in results.badge.object
    linked = DashboardSession(context)  # a shared link to the run and a patient
    linked.restore(View(page="results", run=key, patient=7))
    assert linked.results_page.key == key
    assert "Patient 7" in linked.results_page.patient_summary.object
    again.close()
    linked.close()


def test_the_server_keeps_the_last_eight():
    runs = RecentMemoryRuns()
    small = run_simulation(load_protocol(DEFAULT_PROTOCOL), 50, years=1, seed=1)
    keys = [f"20261204-0000{i:02d}-aaaa" for i in range(KEEP + 2)]
    for key in keys:
        runs[key] = small
    assert runs.keys() == keys[2:]
    assert keys[0] not in runs and runs.get(keys[-1]) is small
    runs[keys[2]] = small  # used again: newest
    assert runs.keys()[-1] == keys[2]
