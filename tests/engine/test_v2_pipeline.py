"""The time-based model through the streaming pipeline: the rows and statistics of a run do not
depend on the workers, the tier, the shard size, or a kill -9 followed by a resume.

The bundled time-based protocol runs with cohort and with rate recruitment (enrolment days
keyed on fixed id blocks, so they must not depend on shards either). Exact checks only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import numpy as np
import psutil
import pyarrow as pa
import pytest

from engine import run_simulation
from engine.manifest import read_checkpoint, read_manifest
from engine.model.parameters import Recruitment, RunParameters
from engine.model.protocol_loader import load_protocol
from engine.model.v2.schema import TimeBasedProtocol
from engine.pipeline import PipelineOptions, resume_run, run_pipeline
from engine.results import ParquetResults
from engine.results.base import SimulationResults
from ipc.segments import SHM_DIR
from tests.cli.test_cli import AMDSIM
from tests.engine.test_pipeline import Watcher, kill_a_worker
from tests.engine.test_resume import _kill_group_when, _patients_on_disk, _start

BUNDLED = "time_based_uncalibrated_treat_and_extend"
RECRUITMENT = {
    "cohort": Recruitment(),
    "rate": Recruitment(mode="rate", patients_per_week=150.0),
}


def bundled() -> TimeBasedProtocol:
    protocol = load_protocol(BUNDLED)
    assert isinstance(protocol, TimeBasedProtocol)
    return protocol


def params(mode: str, n_patients: int, shard_size: int, years: float = 3, seed: int = 23):
    return RunParameters(
        n_patients=n_patients,
        years=years,
        seed=seed,
        shard_size=shard_size,
        recruitment=RECRUITMENT[mode],
    )


class Contents(msgspec.Struct, frozen=True):
    """Every row of a run (dictionary columns decoded: Parquet may re-encode dictionaries),
    its statistics and its outcome table (as JSON: months beyond the horizon are NaN,
    unequal to itself)."""

    patients: pa.Table
    visits: pa.Table
    statistics: bytes
    outcome_table: bytes


def _decoded(table: pa.Table) -> pa.Table:
    """`table` in one chunk with dictionary columns cast to their values."""
    table = table.combine_chunks()
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=table.column_names).combine_chunks()


def contents(results: SimulationResults, n_patients: int) -> Contents:
    patients, visits = results.get_patient_range(0, n_patients)
    statistics = results.statistics()
    table = statistics.outcome_table()
    assert table is not None and table.rows, "a time-based run has an outcome table"
    return Contents(
        _decoded(patients),
        _decoded(visits),
        msgspec.json.encode(statistics.state()),
        msgspec.json.encode(table),
    )


def on_disk(run_dir: Path, n_patients: int) -> Contents:
    with ParquetResults(run_dir) as results:
        return contents(results, n_patients)


def assert_same(ours: Contents, theirs: Contents) -> None:
    for table in ("patients", "visits"):
        mine, other = getattr(ours, table), getattr(theirs, table)
        assert mine.column_names == other.column_names, table
        assert mine.num_rows == other.num_rows, f"{table}: row counts differ"
        for name in mine.column_names:
            assert mine.column(name).equals(other.column(name)), f"{table}.{name} differs"
    assert ours.outcome_table == theirs.outcome_table, "outcome tables differ"
    assert ours.statistics == theirs.statistics, "statistics differ"


# -- workers and tiers --------------------------------------------------------------------------

N = 6_000
SHARD = 500


@pytest.fixture(scope="module", params=list(RECRUITMENT))
def in_memory(request) -> tuple[str, Contents]:
    mode = request.param
    run = params(mode, N, SHARD)
    results = run_simulation(
        bundled(),
        N,
        run.years,
        run.seed,
        shard_size=SHARD,
        recruitment=run.recruitment,
        in_memory=True,
    )
    return mode, contents(results, N)


def test_one_and_two_workers_stream_the_in_memory_rows_and_statistics(tmp_path, in_memory):
    mode, expected = in_memory
    for workers in (1, 2):
        run_dir = tmp_path / f"workers-{workers}"
        manifest = run_pipeline(
            bundled(), params(mode, N, SHARD), run_dir, PipelineOptions(workers=workers)
        )
        assert manifest.status == "completed" and manifest.format_version == 2
        assert manifest.workers == workers
        assert_same(on_disk(run_dir, N), expected)
    one, two = ((tmp_path / f"workers-{w}" / "stats.json").read_bytes() for w in (1, 2))
    assert one == two, "stats.json differs byte for byte between 1 and 2 workers"
    if mode == "rate":
        days = expected.patients.column("enrollment_day").to_numpy()
        assert len(np.unique(days)) > 100, "arrivals spread out"


def test_run_simulation_streaming_tier_gives_the_in_memory_run(tmp_path, in_memory):
    mode, expected = in_memory
    run = params(mode, N, SHARD)
    results = run_simulation(
        BUNDLED,  # by name, as the CLI and the dashboard give it
        N,
        run.years,
        run.seed,
        shard_size=SHARD,
        recruitment=run.recruitment,
        runs_dir=tmp_path / "runs",
        in_memory=False,
    )
    try:
        assert isinstance(results, ParquetResults)
        assert results.manifest.format_version == 2
        assert_same(contents(results, N), expected)
    finally:
        results.close()


# -- shard sizes --------------------------------------------------------------------------------

SMALL = 250  # shard size 1 means 250 shards: still quick


@pytest.mark.parametrize("mode", list(RECRUITMENT))
def test_shard_sizes_4096_1000_and_1_stream_identical_rows_and_statistics(tmp_path, mode):
    """Rows, counts and the outcome table are identical. The sketches' running moments are
    float sums merged shard by shard, so their last bits follow the order of summation: they
    are compared to 1e-12 relative (the shard count itself is of course different)."""
    runs = {}
    for shard_size, workers in ((4096, 1), (1000, 1), (1, 2)):
        run_dir = tmp_path / f"shard-{shard_size}"
        run = params(mode, SMALL, shard_size, years=2)
        manifest = run_pipeline(bundled(), run, run_dir, PipelineOptions(workers=workers))
        assert manifest.status == "completed" and manifest.shard_count == run.shard_count
        runs[shard_size] = on_disk(run_dir, SMALL)
    reference = runs[4096]
    for shard_size in (1000, 1):
        ours = runs[shard_size]
        assert ours.patients.equals(reference.patients), f"patients differ at {shard_size}"
        assert ours.visits.equals(reference.visits), f"visits differ at shard size {shard_size}"
        assert ours.outcome_table == reference.outcome_table
        mine, theirs = (msgspec.json.decode(c.statistics) for c in (ours, reference))
        assert mine["counts"] == theirs["counts"], f"counts differ at shard size {shard_size}"
        assert mine["horizon_days"] == theirs["horizon_days"]
        assert mine["sketches"].keys() == theirs["sketches"].keys()
        for name, sketch in mine["sketches"].items():
            np.testing.assert_allclose(
                _numbers(sketch), _numbers(theirs["sketches"][name]), rtol=1e-12, err_msg=name
            )


def _numbers(node) -> list[float]:
    """Every number of a nested JSON value, in order."""
    if isinstance(node, dict):
        return [x for value in node.values() for x in _numbers(value)]
    if isinstance(node, list):
        return [x for value in node for x in _numbers(value)]
    return [float(node)] if isinstance(node, int | float) else []


# -- kill -9 and resume -------------------------------------------------------------------------


def _cli_run(runs: Path, mode: str, n_patients: int, shard: int, checkpoint: int) -> list[str]:
    if AMDSIM is None:
        pytest.fail("the amdsim console script is not installed (pip install -e .)")
    command = [AMDSIM, "run", "--protocol", BUNDLED, "--patients", str(n_patients)]
    command += ["--years", "2", "--seed", "31", "--shard-size", str(shard), "--workers", "2"]
    command += ["--checkpoint-every", str(checkpoint), "--runs-dir", str(runs)]
    if mode == "rate":
        rate = n_patients / 52  # enrolment over about a year of the 2-year horizon
        command += ["--recruitment", "rate", "--patients-per-week", repr(rate)]
    return command


def _uninterrupted(run_dir: Path, reference_dir: Path) -> Contents:
    """The interrupted run's own protocol and parameters (from its manifest), run whole."""
    manifest = read_manifest(run_dir / "manifest.json")
    assert isinstance(manifest.protocol, TimeBasedProtocol)
    run_pipeline(manifest.protocol, manifest.parameters, reference_dir, PipelineOptions(workers=1))
    return on_disk(reference_dir, manifest.parameters.n_patients)


def _kill_supervisor_when(process: subprocess.Popen, run_dir: Path, patients: int) -> None:
    """SIGKILL the supervisor alone once `patients` are on disk; its children must follow."""
    while _patients_on_disk(run_dir) < patients:
        if process.poll() is not None:
            pytest.fail(f"the run ended before {patients:,} patients were on disk")
        time.sleep(0.002)
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the supervisor had no workers or writer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    process.stderr.close()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"children outlived the supervisor: {alive}"


def test_kill_9_of_the_supervisor_mid_run_then_resume_gives_the_uninterrupted_run(tmp_path):
    n_patients = 40_000
    runs = tmp_path / "runs"
    runs.mkdir()
    process, run_dir = _start(_cli_run(runs, "cohort", n_patients, 500, 2_000), None, runs)
    _kill_supervisor_when(process, run_dir, 4_000)
    manifest = read_manifest(run_dir / "manifest.json")
    assert manifest.status == "running", "killed: nobody recorded the end"
    kept = {loc.shard for loc in read_checkpoint(run_dir / "checkpoint.json").shards}
    assert kept and len(kept) < manifest.parameters.shard_count
    resumed = resume_run(run_dir, PipelineOptions(workers=1))
    assert resumed.status == "completed" and resumed.resumes == 1
    assert resumed.patients == n_patients
    assert_same(on_disk(run_dir, n_patients), _uninterrupted(run_dir, tmp_path / "whole"))
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"amdsim-{run_dir.name}")]


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7])
def test_kill_9_of_the_whole_run_with_rate_recruitment_then_resume(tmp_path, fraction):
    n_patients = 300_000
    runs = tmp_path / "runs"
    runs.mkdir()
    process, run_dir = _start(_cli_run(runs, "rate", n_patients, 2_000, 10_000), None, runs)
    _kill_group_when(process, run_dir, int(fraction * n_patients), 0.01)
    resumed = subprocess.run(
        [AMDSIM, "resume", run_dir.name, "--runs-dir", str(runs), "--workers", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert read_manifest(run_dir / "manifest.json").status == "completed"
    assert_same(on_disk(run_dir, n_patients), _uninterrupted(run_dir, tmp_path / "whole"))


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_the_rows_are_unchanged(tmp_path):
    run = msgspec.structs.replace(
        params("cohort", 300_000, 1_000, years=2),
        recruitment=Recruitment(mode="rate", patients_per_week=300_000 / 52),
    )
    watcher = Watcher(0.2, kill_a_worker)
    manifest = run_pipeline(
        bundled(), run, tmp_path / "run", PipelineOptions(workers=2), watcher.attach
    )
    watcher.thread.join(5)
    assert watcher.acted_at is not None and manifest.status == "completed"
    assert_same(
        on_disk(tmp_path / "run", run.n_patients),
        _uninterrupted(tmp_path / "run", tmp_path / "whole"),
    )


def test_contents_compares_what_it_should(tmp_path):
    """The comparison itself: a different seed must be caught (guards against a vacuous
    helper, e.g. one comparing empty tables)."""
    a = run_simulation(bundled(), 300, 2, 1, in_memory=True)
    b = run_simulation(bundled(), 300, 2, 2, in_memory=True)
    with pytest.raises(AssertionError):
        assert_same(contents(a, 300), contents(b, 300))
    assert contents(a, 300).visits.num_rows > 300


def test_the_same_people_under_two_protocols_with_rate_recruitment():
    """Common random numbers end to end (the kernel test covers a cohort): the same ids
    arrive on the same days with the same age, sex, baseline VA and responder status under
    treat-and-extend and under a fixed 8-weekly schedule, whose courses then differ."""
    fixed = msgspec.structs.replace(
        bundled(), protocol_type="fixed", min_interval_days=56, max_interval_days=56
    )
    run = params("rate", 1_500, 4096, years=2)
    tables = [
        run_simulation(
            protocol, 1_500, 2, run.seed, recruitment=run.recruitment, in_memory=True
        ).get_patient_range(0, 1_500)[0]
        for protocol in (bundled(), fixed)
    ]
    for name in ("enrollment_day", "age", "sex", "baseline_vision", "responder"):
        assert tables[0].column(name).equals(tables[1].column(name)), name
    assert len(np.unique(tables[0].column("enrollment_day").to_numpy())) > 30  # ~10 weeks
    assert not tables[0].column("injections").equals(tables[1].column("injections"))
