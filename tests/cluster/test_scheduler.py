"""`amdsim run --cluster tcp://...` against a real scheduler and two `dask worker` processes
on 127.0.0.1: identical output, the run's commands work on it, and a killed client leaves an
interrupted run that `amdsim resume --cluster` finishes identically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from tests.cli.test_cli import AMDSIM, amdsim
from tests.cluster.test_identity import _assert_clean
from tests.engine.test_resume import _patients_on_disk, _start
from tests.engine.test_v2_pipeline import assert_same, on_disk


def _reference(tmp_path: Path, params: RunParameters) -> Path:
    run_dir = tmp_path / "local"
    run_pipeline(load_protocol(DEFAULT_PROTOCOL), params, run_dir, PipelineOptions(workers=2))
    return run_dir


def _only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


def test_a_run_on_a_real_scheduler_matches_the_local_run_and_reads_like_one(
    tmp_path, scheduler
) -> None:
    runs = tmp_path / "runs"
    done = amdsim(
        "run", "--patients", "40000", "--years", "3", "--seed", "4", "--shard-size", "2000",
        "--cluster", scheduler.address, "--runs-dir", str(runs), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"on the Dask scheduler at {scheduler.address}" in done.stderr
    run_dir = _only_run(runs)
    params = RunParameters(n_patients=40_000, years=3.0, seed=4, shard_size=2000)
    assert_same(on_disk(run_dir, 40_000), on_disk(_reference(tmp_path, params), 40_000))
    _assert_clean(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["cluster"] == scheduler.address and manifest["workers"] == 2
    # The commands that read runs need nothing cluster-specific.
    listed = amdsim("list", "--json", "--runs-dir", str(runs))
    assert json.loads(listed.stdout)[0]["status"] == "completed"
    shown = amdsim("show", run_dir.name, "--json", "--runs-dir", str(runs))
    assert json.loads(shown.stdout)["summary"]["patients"] == 40_000, shown.stdout
    patient = amdsim("patient", run_dir.name, "39999", "--json", "--runs-dir", str(runs))
    assert json.loads(patient.stdout)["patient"]["patient_id"] == 39_999, patient.stderr
    report = amdsim(
        "report", run_dir.name, "--out", str(tmp_path / "r.html"), "--runs-dir", str(runs)
    )
    assert report.returncode == 0 and (tmp_path / "r.html").stat().st_size > 10_000


@pytest.mark.slow
def test_a_killed_client_leaves_an_interrupted_run_that_resumes_identically(
    tmp_path, scheduler
) -> None:
    runs = tmp_path / "runs"
    command = [
        AMDSIM, "run", "--patients", "200000", "--years", "5", "--seed", "9",
        "--cluster", scheduler.address, "--runs-dir", str(runs),
    ]  # fmt: skip
    process, run_dir = _start(command, None, runs)
    while _patients_on_disk(run_dir) < 20_000:
        assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    process.stderr.close()
    listed = amdsim("list", "--json", "--runs-dir", str(runs))
    assert json.loads(listed.stdout)[0]["status"] == "interrupted"
    assert _patients_on_disk(run_dir) < 200_000
    resumed = amdsim(
        "resume", run_dir.name, "--cluster", scheduler.address, "--runs-dir", str(runs)
    )
    assert resumed.returncode == 0, resumed.stderr
    params = RunParameters(n_patients=200_000, years=5.0, seed=9)
    assert_same(on_disk(run_dir, 200_000), on_disk(_reference(tmp_path, params), 200_000))
    _assert_clean(run_dir)
    assert json.loads((run_dir / "manifest.json").read_text())["resumes"] == 1


def test_an_unreachable_scheduler_is_one_line_and_starts_nothing(tmp_path) -> None:
    runs = tmp_path / "runs"
    done = subprocess.run(
        [AMDSIM, "run", "--patients", "20000", "--cluster", "tcp://127.0.0.1:9", "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr
    assert not runs.exists() or not any(runs.iterdir())
