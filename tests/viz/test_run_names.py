"""A run has a name and notes (CLI --name/--notes, the dashboard's form), kept in its manifest
and registry entry through a resume and a rebuilt registry, and shown instead of the id: Runs
table, Results choice, Run page status. A bad name is one line and starts nothing."""

from __future__ import annotations

import json

from engine.manifest import read_manifest
from engine.registry import Registry
from engine.state_manager import StateManager
from tests.cli.test_cli import AMDSIM, amdsim
from tests.engine.test_resume import _kill_group_when, _patients_on_disk, _start
from tests.viz.test_components import shown
from viz.app import TAB_NAMES, DashboardSession
from viz.context import ServerContext
from viz.run_page import RunPage
from viz.runs_page import RunsPage


def _listed(runs) -> list[dict]:
    listed = amdsim("list", "--json", "--runs-dir", str(runs))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_the_cli_names_a_run_and_the_name_outlives_a_resume_and_a_lost_registry(tmp_path):
    runs = tmp_path / "runs"
    command = [AMDSIM, "run", "--patients", "1000000", "--years", "5", "--seed", "2"]
    command += ["--checkpoint-every", "20000", "--name", "ALTAIR, 2-week steps"]
    command += ["--notes", "first look\nfor the service review", "--runs-dir", str(runs)]
    process, run_dir = _start(command, None, runs)
    _kill_group_when(process, run_dir, 20_000, 0.0)
    assert 0 < _patients_on_disk(run_dir) < 1_000_000
    resumed = amdsim("resume", run_dir.name, "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr
    manifest = read_manifest(run_dir / "manifest.json")
    assert (manifest.name, manifest.notes) == (
        "ALTAIR, 2-week steps",
        "first look\nfor the service review",
    )
    assert manifest.resumes == 1
    (runs / "registry.json").unlink()  # rebuilt from the manifests: the name is the run's own
    (entry,) = _listed(runs)
    assert (entry["name"], entry["notes"]) == (manifest.name, manifest.notes)


def test_a_small_cli_run_is_listed_with_its_name_and_a_bad_name_starts_nothing(tmp_path):
    runs = tmp_path / "runs"
    done = amdsim(
        "run", "--patients", "200", "--years", "1", "--name", "  pilot  ", "--runs-dir", str(runs)
    )
    assert done.returncode == 0, done.stderr
    assert [e["name"] for e in _listed(runs)] == ["pilot"]
    bad = amdsim("run", "--patients", "200", "--name", "a\tb", "--runs-dir", str(runs))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: name: one line of text, without tabs or control characters"
    long = amdsim("run", "--patients", "20000", "--name", "x" * 81, "--runs-dir", str(runs))
    assert long.stderr.strip() == "error: name: at most 80 characters, got 81"
    assert len(_listed(runs)) == 1


def test_the_dashboard_shows_a_named_run_by_its_name_everywhere(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    session = DashboardSession(context)
    page = session.run_page
    page.patients.value, page.years.value = 300, 1.0
    page.run_name.value = "Treat-and-extend pilot"
    page.run_notes.value = "for the January meeting"
    key = page.start()
    page.join(timeout_s=60)
    assert shown(page.status.object).startswith(f"Treat-and-extend pilot ({key}): completed")
    entry = Registry(context.runs_root).get(key)
    assert (entry.name, entry.notes) == ("Treat-and-extend pilot", "for the January meeting")
    runs = RunsPage(context, on_open=lambda _: None, on_follow=lambda _: None)
    runs.refresh()
    row = runs.table.value.iloc[0]
    assert (row["name"], row["run_id"], row["notes"]) == (
        "Treat-and-extend pilot",
        key,
        "for the January meeting",
    )
    session.tabs.active = TAB_NAMES.index("Results")
    results = session.results_page
    assert results.key == key
    assert results.run_select.options == {f"Treat-and-extend pilot ({key})": key}
    session.close()


def test_a_bad_name_on_the_form_is_refused_and_a_streaming_run_gets_its_name(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    page = RunPage(context, StateManager())
    page.patients.value, page.years.value, page.workers.value = 3_000, 1.0, 1
    page.run_name.value = "y" * 81
    assert page.start() is None
    assert shown(page.message.object) == "name: at most 80 characters, got 81"
    assert not context.launcher.launched
    page.run_name.value = "streamed"
    run_id = page.start()
    launched = context.launcher.launched[run_id]
    try:
        assert launched.process.wait(timeout=180) == 0, launched.log.read_text()
    finally:
        page.watch.stop()
    assert read_manifest(launched.run_dir / "manifest.json").name == "streamed"
    assert Registry(context.runs_root).get(run_id).name == "streamed"
