"""`amdsim show`, `amdsim report` and the Results page show the outcome table of a format-2 run,
and "not available" for a format-1 run (the committed format-1 fixture)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from engine.stats.outcome_table import NOT_AVAILABLE
from tests.cli.test_cli import amdsim
from tests.engine.test_format2_outputs import time_based_protocol, write_streamed_run
from tests.v2_outputs import synthetic_v2_outputs
from viz.report import write_report

FORMAT_1_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "format-1" / "run"


def v2_run(tmp_path: Path) -> Path:
    from tests.engine.test_format2_outputs import HORIZON, SHARD, N

    run_dir = tmp_path / "20261202-000000-bbbb"
    write_streamed_run(run_dir, time_based_protocol(), synthetic_v2_outputs(N, SHARD, HORIZON))
    return run_dir


def test_show_prints_the_outcome_table_or_says_it_is_not_available(tmp_path):
    shown = amdsim("show", str(v2_run(tmp_path)))
    assert shown.returncode == 0, shown.stderr
    assert "Outcome table" in shown.stdout
    assert "   12 locf" in shown.stdout and "   60 observed" in shown.stdout
    assert "per 100 patient-years" in shown.stdout
    document = json.loads(amdsim("show", str(tmp_path / "20261202-000000-bbbb"), "--json").stdout)
    rows = document["outcome_table"]["rows"]
    assert [(r["month"], r["kind"]) for r in rows[:2]] == [(3, "locf"), (3, "observed")]
    assert rows[0]["patients"] > 0
    copy = Path(shutil.copytree(FORMAT_1_RUN, tmp_path / "format-1"))
    old = amdsim("show", str(copy))
    assert old.returncode == 0, old.stderr
    assert f"Outcome table: {NOT_AVAILABLE}" in " ".join(old.stdout.split())
    old_json = json.loads(amdsim("show", str(copy), "--json").stdout)
    assert old_json["outcome_table"] == NOT_AVAILABLE


def test_the_report_holds_the_outcome_table_or_says_it_is_not_available(tmp_path):
    html = write_report(v2_run(tmp_path), tmp_path / "v2.html").read_text()
    assert "Outcome table" in html and "LOCF" in html and "per 100 patient-years" in html
    copy = Path(shutil.copytree(FORMAT_1_RUN, tmp_path / "format-1"))
    old = write_report(copy, tmp_path / "v1.html").read_text()
    assert "not available" in old


def test_the_results_page_shows_the_outcome_table_and_the_v2_reasons(tmp_path):
    from engine.state_manager import StateManager
    from viz.context import ServerContext
    from viz.results_page import ResultsPage

    run_dir = v2_run(tmp_path / "runs")
    shutil.copytree(FORMAT_1_RUN, tmp_path / "runs" / "20200101-000000-aaaa")
    page = ResultsPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())
    assert page.open(run_dir.name)
    assert "Outcome table" in page.outcomes.object and "LOCF" in page.outcomes.object
    table = page.outcomes.object
    months = [int(m) for m in re.findall(r"<tr><td>(\d+)</td><td>Trial view", table)]
    assert {12, 24, 60} <= set(months), months  # every month a trial reports, in both views
    assert len(re.findall(r"<td>Registry view \(observed\)</td>", table)) == len(months)
    assert "Gained &ge; 15 letters" in table and "Lost &ge; 15 letters" in table
    assert page.charts.discontinuations.source.data["reason"][0] == "death"
    assert page.lookup(5) and "Patient 5" in page.patient_summary.object
    assert page.open("20200101-000000-aaaa")
    assert "not available" in page.outcomes.object
    assert page.charts.discontinuations.source.data["reason"][0] == "poor_vision"
