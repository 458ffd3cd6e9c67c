"""The CLI on the bundled time-based protocol, end to end: `amdsim run --protocol
time_based_uncalibrated_treat_and_extend --patients 2000` streams a format-2 run, and
`amdsim show`, `amdsim patient` and `amdsim report` read it back, outcome table included,
with the numbers the run's own files hold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.results import ParquetResults
from tests.cli.in_process import run_cli
from tests.cli.test_cli import amdsim

BUNDLED = "time_based_uncalibrated_treat_and_extend"
PATIENTS = 2_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("time-based") / "runs"
    result = amdsim(
        *("run", "--protocol", BUNDLED, "--patients", str(PATIENTS)),
        *("--years", "3", "--seed", "6", "--workers", "1", "--runs-dir", str(runs)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Time-based T&E (UNCALIBRATED" in result.stdout
    assert "2,000 patients x 3 years, seed 6" in result.stdout
    (found,) = runs.glob("*/manifest.json")
    return found.parent


def test_show_prints_the_run_with_its_outcome_table(run_dir, capsys):
    shown = run_cli(capsys, "show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "Outcome table" in shown.stdout
    assert "   12 locf" in shown.stdout and "   24 observed" in shown.stdout
    assert "per 100 patient-years" in shown.stdout
    assert "administrative" in shown.stdout  # a reason of the time-based model
    document = json.loads(run_cli(capsys, "show", str(run_dir), "--json").stdout)
    assert document["summary"]["patients"] == PATIENTS
    with ParquetResults(run_dir) as results:
        table = results.statistics().outcome_table()
        visits = results.manifest.visits
    assert document["summary"]["visits"] == visits
    rows = document["outcome_table"]["rows"]
    assert len(rows) == len(table.rows)
    for printed, stored in zip(rows, table.rows, strict=True):
        assert (printed["month"], printed["kind"]) == (stored.month, stored.kind)
        assert printed["patients"] == stored.patients
        if stored.patients:
            assert math.isclose(printed["mean_change"], stored.mean_change)
    assert {r["month"] for r in rows if r["patients"]} >= {3, 6, 12, 24, 36}


def test_patient_prints_one_patient_with_the_time_based_columns(run_dir, capsys):
    shown = run_cli(capsys, "patient", str(run_dir), "17")
    assert shown.returncode == 0, shown.stderr
    assert "Patient 17" in shown.stdout and "va m12" in shown.stdout
    document = json.loads(run_cli(capsys, "patient", str(run_dir), "17", "--json").stdout)
    with ParquetResults(run_dir) as results:
        stored = results.get_patient(17)
    patient = document["patient"]
    assert patient["patient_id"] == 17 and patient["sex"] in ("male", "female")
    for name in ("baseline_vision", "final_vision", "va_m12", "injections_y1", "death_day"):
        assert patient[name] == stored.patient[name], name
    visits = document["visits"]
    assert len(visits) == patient["visits"] == stored.visits.num_rows
    assert visits[0]["visit"] == 0 and visits[0]["day"] == patient["enrollment_day"]
    assert [v["vision"] for v in visits] == stored.visits.column("vision").to_pylist()
    assert all(0 <= v["vision"] <= 100 for v in visits)
    assert sum(v["injected"] for v in visits) == patient["injections"]
    missing = run_cli(capsys, "patient", str(run_dir), str(PATIENTS))
    assert missing.returncode != 0 and missing.stderr.startswith("error: ")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_report_writes_the_results_page_with_the_outcome_table(run_dir, capsys, tmp_path):
    out = tmp_path / "report.html"
    written = run_cli(capsys, "report", str(run_dir), "--out", str(out))
    assert written.returncode == 0, written.stderr
    html = out.read_text()
    assert "Outcome table" in html and "LOCF" in html and "per 100 patient-years" in html
    assert "Time-based T&amp;E (UNCALIBRATED" in html or "Time-based T&E (UNCALIBRATED" in html
