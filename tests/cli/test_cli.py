"""The installed `amdsim` console script, end to end: output, files, exit codes, messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine import run_simulation
from engine.model.protocol_loader import bundled_protocol_names
from engine.results import InMemoryResults
from tests.helpers import V1_PROTOCOL, protocol_yaml

AMDSIM = shutil.which("amdsim", path=str(Path(sys.executable).parent)) or shutil.which("amdsim")


def amdsim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if AMDSIM is None:
        pytest.fail("the amdsim console script is not installed (pip install -e .)")
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [AMDSIM, *args], check=False, capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def test_run_without_a_protocol_runs_the_calibrated_altair_treat_and_extend():
    result = amdsim("run", "--patients", "300", "--years", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "Aflibercept 2 mg treat-and-extend (ALTAIR, calibrated): 300 patients" in result.stdout


def test_run_prints_the_summary_table():
    result = amdsim(
        "run", "--patients", "2000", "--years", "2", "--seed", "3", "--protocol", V1_PROTOCOL
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Aflibercept treat-and-extend: 2,000 patients x 2 years, seed 3" in out
    for label in (
        "Patients",
        "Visits",
        "Injections per patient-year",
        "Mean baseline VA",
        "Mean final VA",
        "Discontinued",
        "poor vision",
        "high injections",
        "long treatment",
        "Wall time",
        "Patients/s",
        "Visits/s",
    ):
        assert label in out
    assert "2,000" in out


def test_run_json_matches_the_same_run_in_process():
    result = amdsim(
        "run",
        "--patients",
        "1500",
        "--years",
        "3",
        "--seed",
        "11",
        "--protocol",
        "ranibizumab_prn_monthly",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    expected = run_simulation(
        "ranibizumab_prn_monthly", n_patients=1500, years=3, seed=11, in_memory=True
    ).summary_stats()
    assert document["summary"]["visits"] == expected.visits
    assert document["summary"]["mean_final_vision"] == pytest.approx(expected.mean_final_vision)
    assert document["parameters"]["n_patients"] == 1500
    assert document["visits_per_s"] > 0


@pytest.mark.parametrize("table_format", ["parquet", "arrow"])
def test_run_out_saves_results_that_load_back(tmp_path, table_format):
    out = tmp_path / "results"
    result = amdsim(
        "run", "--patients", "300", "--years", "1", "--out", str(out), "--format", table_format
    )
    assert result.returncode == 0, result.stderr
    loaded = InMemoryResults.load(out)
    assert loaded.patient_count == 300
    assert f"Saved to {out} ({table_format})" in result.stdout


def test_run_with_a_bad_protocol_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(protocol_yaml(disease_transitions__STABLE__STABLE=0.5))
    result = amdsim("run", "--protocol", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: bad.yaml: $.disease_transitions.STABLE: sums to 0.65; each row must sum to 1 +/- 0.001"
    )


def test_run_with_bad_parameters_exits_2_without_a_traceback():
    result = amdsim("run", "--patients", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: patients must be between 1 and 1,000,000,000, got 0"
    assert "Traceback" not in result.stderr


def test_validate_accepts_a_good_file_and_reports_unknown_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(protocol_yaml(mortality={"enabled": True}))
    result = amdsim("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "mine.yaml: valid - Aflibercept treat-and-extend (treat_and_extend"
    )
    assert (
        result.stderr.strip() == "warning: mine.yaml: unknown keys kept but not used: $.mortality"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "error: empty.yaml: file is empty; expected a YAML mapping of protocol fields"),
        (
            "a: [",
            "error: empty.yaml: is not valid YAML: did not find expected node content (line 2, column 1)",
        ),
    ],
)
def test_validate_rejects_a_bad_file_with_exit_2(tmp_path, content, message):
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    result = amdsim("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_validate_of_a_missing_file_exits_2():
    result = amdsim("validate", "/no/such/file.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("error: /no/such/file.yaml: no such file")


def test_protocols_lists_every_bundled_protocol_and_marks_the_default():
    result = amdsim("protocols")
    assert result.returncode == 0
    for name in bundled_protocol_names():
        assert name in result.stdout
    assert "aflibercept_treat_and_extend_altair *" in result.stdout


def test_usage_errors_exit_2():
    result = amdsim("run", "--patients", "many")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr


def test_version_is_printed():
    result = amdsim("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("amdsim ")


def test_module_entry_point_runs_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "protocols"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "aflibercept_treat_and_extend" in result.stdout


def test_a_large_run_streams_to_a_run_directory(tmp_path):
    result = amdsim(
        "run",
        "--patients",
        "6000",
        "--years",
        "2",
        "--workers",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["storage"] == "parquet" and document["status"] == "completed"
    run_dir = Path(document["run_dir"])
    assert run_dir.parent == tmp_path and (run_dir / "manifest.json").is_file()
    assert document["summary"]["patients"] == 6000
    assert document["workers"] == 2
    assert document["peak_rss_bytes"] > 0
    expected = run_simulation(n_patients=6000, years=2, in_memory=True).summary_stats()
    assert document["summary"]["visits"] == expected.visits


def test_a_large_run_prints_where_it_is_and_how_big(tmp_path):
    out = tmp_path / "my-run"
    result = amdsim(
        "run",
        "--patients",
        "3000",
        "--years",
        "1",
        "--workers",
        "1",
        "--out",
        str(out),
        "--compression",
        "snappy",
    )
    assert result.returncode == 0, result.stderr
    for label in (
        "Run directory",
        "Bytes on disk",
        "Bytes per visit",
        "Compression ratio",
        "snappy",
        "Peak memory",
    ):
        assert label in result.stdout
    assert (out / "manifest.json").is_file()


def test_run_with_timings_prints_where_the_time_went_and_the_bottleneck():
    result = amdsim("run", "--patients", "30000", "--years", "2", "--workers", "2", "--timings")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Where the time went" in out
    for label in ("2 workers (summed)", "writer lane 1", "simulate", "Parquet", "other"):
        assert label in out, label
    assert "bottleneck" in out or "waited for work" in out or "Start-up took" in out


def test_run_with_timings_as_json_carries_every_process_and_the_sentence():
    result = amdsim(
        "run",
        "--patients",
        "30000",
        "--years",
        "2",
        "--workers",
        "2",
        "--writer-lanes",
        "2",
        "--timings",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    names = sorted(entry["process"] for entry in document["stage_timings"])
    assert names == ["worker-1", "worker-2", "writer", "writer lane 1", "writer lane 2"]
    for entry in document["stage_timings"]:
        assert sum(entry["stages"].values()) == pytest.approx(entry["wall_s"], rel=1e-9)
    assert document["bottleneck"]


def test_timings_of_a_small_run_say_there_are_none_and_bad_writer_lanes_are_refused():
    small = amdsim("run", "--patients", "300", "--years", "1", "--timings")
    assert small.returncode == 0, small.stderr
    assert "no stage timings: this run ran in memory" in small.stderr
    bad = amdsim("run", "--patients", "30000", "--writer-lanes", "-1")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["error: writer lanes must be at least 1, got -1"], (
        bad.stderr
    )
