"""`amdsim list`, `show`, `patient`, `delete`, `cleanup`, `resume` and `run --restart`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from engine.results import ParquetResults
from tests.cli.test_cli import amdsim

PATIENTS = 3_000


def start_run(runs: Path, seed: int, *extra: str) -> dict:
    result = amdsim(
        "run",
        "--patients",
        str(PATIENTS),
        "--years",
        "2",
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--runs-dir",
        str(runs),
        "--json",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A runs root with two finished runs (seeds 1 and 2)."""
    root = tmp_path_factory.mktemp("runs")
    first = start_run(root, 1)
    time.sleep(1.0)  # run ids carry the second they were made in
    second = start_run(root, 2, "--protocol", "ranibizumab_prn_monthly")
    return root, first, second


def test_list_shows_every_run_newest_first_and_filters(runs):
    root, first, second = runs
    table = amdsim("list", "--runs-dir", str(root))
    assert table.returncode == 0, table.stderr
    assert table.stdout.index(second["run_id"]) < table.stdout.index(first["run_id"])
    assert "completed" in table.stdout and f"{PATIENTS:,} x 2y" in table.stdout

    def listed(*args: str) -> list[str]:
        result = amdsim("list", "--runs-dir", str(root), "--json", *args)
        assert result.returncode == 0, result.stderr
        return [entry["run_id"] for entry in json.loads(result.stdout)]

    assert listed() == [second["run_id"], first["run_id"]]
    assert listed("ranibizumab") == [second["run_id"]]
    assert listed("--status", "failed") == []
    assert listed("--status", "completed", first["run_id"][:-2]) in (
        [first["run_id"]],
        [second["run_id"], first["run_id"]],
    )
    assert listed("--since", "2000-01-01", "--until", "2999-12-31") == listed()
    assert listed("--until", "2000-01-01") == []
    assert listed("--min-size", "1G") == []
    assert listed("--max-size", "1G") == listed()
    bad = amdsim("list", "--runs-dir", str(root), "--min-size", "lots")
    assert bad.returncode == 2 and "is not a size" in bad.stderr


def test_show_prints_outcomes_distributions_and_storage(runs):
    root, first, _ = runs
    result = amdsim("show", first["run_id"], "--runs-dir", str(root))
    assert result.returncode == 0, result.stderr
    for label in (
        "Outcomes",
        "Mean final VA",
        "Distributions",
        "VA final (letters)",
        "injections per year",
        "Storage",
        "Parquet on disk",
        "Compression ratio",
        "Bytes per visit",
    ):
        assert label in result.stdout, label
    document = json.loads(amdsim("show", first["run_id"], "--runs-dir", str(root), "--json").stdout)
    assert document["storage"] == "parquet" and document["status"] == "completed"
    assert document["patients_stored"] == PATIENTS
    assert document["summary"]["visits"] == first["summary"]["visits"]
    assert document["bytes_on_disk"] == first["bytes_on_disk"]
    assert document["compression_ratio"] > 2
    quantiles = document["va_quantiles"]["final"]
    assert list(quantiles.values()) == sorted(quantiles.values())


def test_show_opens_saved_in_memory_results_as_memory_storage(tmp_path):
    saved = tmp_path / "small"
    made = amdsim("run", "--patients", "300", "--years", "1", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    document = json.loads(amdsim("show", str(saved), "--json").stdout)
    assert document["storage"] == "memory"
    assert document["patients_stored"] == 300
    assert document["bytes_in_memory"] > 0 and document["bytes_on_disk"] > 0


def test_patient_prints_the_row_and_the_visit_timeline(runs):
    root, first, _ = runs
    result = amdsim("patient", first["run_id"], "1234", "--runs-dir", str(root))
    assert result.returncode == 0, result.stderr
    assert "Patient 1234" in result.stdout and "Visits" in result.stdout
    document = json.loads(
        amdsim("patient", first["run_id"], "1234", "--runs-dir", str(root), "--json").stdout
    )
    with ParquetResults(root / first["run_id"]) as results:
        record = results.get_patient(1234)
        assert document["patient"] == record.patient
        assert document["visits"] == record.visits.to_pylist()
    missing = amdsim("patient", first["run_id"], str(PATIENTS), "--runs-dir", str(root))
    assert missing.returncode == 2
    assert f"patient {PATIENTS} is not in this run (ids 0..{PATIENTS - 1})" in missing.stderr


def test_runs_are_named_by_id_unique_prefix_or_path_and_bad_names_say_why(runs):
    root, first, second = runs
    by_path = amdsim("show", str(root / first["run_id"]), "--json")
    assert json.loads(by_path.stdout)["run_id"] == first["run_id"]
    a, b = first["run_id"], second["run_id"]
    shared = next(a[:i] for i in range(len(a), 0, -1) if b.startswith(a[:i]))
    ambiguous = amdsim("show", shared, "--runs-dir", str(root))
    assert ambiguous.returncode == 1 and "matches 2 runs" in ambiguous.stderr
    unknown = amdsim("show", "nope", "--runs-dir", str(root))
    assert unknown.returncode == 1 and "no run 'nope'" in unknown.stderr
    assert "Traceback" not in ambiguous.stderr + unknown.stderr


def test_resume_of_a_finished_run_says_there_is_nothing_to_resume(runs):
    root, first, _ = runs
    result = amdsim("resume", first["run_id"], "--runs-dir", str(root))
    assert result.returncode == 1
    assert "is already complete; there is nothing to resume" in result.stderr


def test_restart_reruns_a_run_with_its_own_settings(tmp_path):
    root = tmp_path / "runs"
    original = start_run(root, 7)
    clash = amdsim(
        "run", "--restart", original["run_id"], "--patients", "5000", "--runs-dir", str(root)
    )
    assert clash.returncode == 2 and "drop --patients" in clash.stderr
    result = amdsim("run", "--restart", original["run_id"], "--runs-dir", str(root), "--json")
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["run_id"] == original["run_id"] and again["status"] == "completed"
    assert again["summary"] == original["summary"]
    assert [p.name for p in root.iterdir() if p.is_dir()] == [original["run_id"]]


def test_delete_and_cleanup_remove_runs_orphans_and_nothing_else(tmp_path):
    root = tmp_path / "runs"
    doomed = start_run(root, 1)["run_id"]
    later = start_run(root, 2)["run_id"]
    kept = start_run(root, 3)["run_id"]
    orphan = root / "20200101-000000-abcd"
    orphan.mkdir()
    os.utime(orphan, (time.time() - 3600,) * 2)

    deleted = amdsim("delete", doomed, "--runs-dir", str(root))
    assert deleted.returncode == 0 and f"deleted {doomed}" in deleted.stdout
    assert not (root / doomed).exists()
    marked = amdsim("delete", later, "--later", "--runs-dir", str(root))
    assert marked.returncode == 0 and (root / later).exists()

    dry = amdsim("cleanup", "--dry-run", "--runs-dir", str(root))
    assert f"would remove marked run: {later}" in dry.stdout
    assert f"would remove orphan directory: {orphan.name}" in dry.stdout
    assert (root / later).exists() and orphan.exists()

    done = amdsim("cleanup", "--runs-dir", str(root))
    assert done.returncode == 0, done.stderr
    assert not (root / later).exists() and not orphan.exists() and (root / kept).exists()
    listed = json.loads(amdsim("list", "--json", "--runs-dir", str(root)).stdout)
    assert [entry["run_id"] for entry in listed] == [kept]
    again = amdsim("delete", doomed, "--runs-dir", str(root))
    assert again.returncode == 1 and "no run" in again.stderr
