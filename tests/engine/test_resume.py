"""Checkpoints, resume and restart: a run stopped anywhere finishes as if it never stopped."""

from __future__ import annotations

import json
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

from engine.errors import RunStateError, WorkerCrashedError, WriterFailedError
from engine.manifest import read_checkpoint, read_manifest, write_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, restart_run, resume_run, run_pipeline
from engine.results import ParquetResults
from engine.run_dir import RunLock, RunPaths
from ipc.segments import SHM_DIR
from tests.cli.test_cli import AMDSIM
from tests.engine.test_pipeline import Watcher
from tests.helpers import V1_PROTOCOL

N_PATIENTS = 96_000  # three blocks of 32 shards: a failure in the second keeps the first
SHARD_SIZE = 1_000
YEARS = 3
SEED = 5


def params(n_patients: int = N_PATIENTS) -> RunParameters:
    return RunParameters(n_patients=n_patients, years=YEARS, seed=SEED, shard_size=SHARD_SIZE)


def contents(run_dir: Path) -> tuple[pa.Table, pa.Table, bytes]:
    """Every row of both tables in id order, and the statistics file's bytes."""
    with ParquetResults(run_dir) as results:
        patients, visits = results.get_patient_range(0, results.parameters.n_patients)
    return patients.combine_chunks(), visits.combine_chunks(), (run_dir / "stats.json").read_bytes()


def assert_same_run(run_dir: Path, expected: tuple[pa.Table, pa.Table, bytes]) -> None:
    patients, visits, stats = contents(run_dir)
    assert patients.num_rows == expected[0].num_rows and patients.equals(expected[0])
    assert visits.num_rows == expected[1].num_rows and visits.equals(expected[1])
    assert json.loads(stats) == json.loads(expected[2]), "statistics differ"
    assert stats == expected[2], "statistics files differ byte for byte"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[pa.Table, pa.Table, bytes]:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_pipeline(load_protocol(V1_PROTOCOL), params(), run_dir, PipelineOptions(workers=1))
    return contents(run_dir)


def failed_run(run_dir: Path, **options) -> None:
    """A run that failed part-way (a shard that always fails), leaving a checkpoint."""
    failing = PipelineOptions(
        workers=1,
        checkpoint_every=12_000,
        worker_fail_shard=40,
        worker_fail_attempts=99,
        max_attempts=1,
        **options,
    )
    with pytest.raises(WorkerCrashedError):
        run_pipeline(load_protocol(V1_PROTOCOL), params(), run_dir, failing)


def test_checkpoint_every_n_patients_closes_the_part_files_and_lists_them(tmp_path, reference):
    run_dir = tmp_path / "run"
    options = PipelineOptions(workers=1, writer_lanes=1, checkpoint_every=8_000)
    manifest = run_pipeline(load_protocol(V1_PROTOCOL), params(), run_dir, options)
    assert manifest.checkpoint_every == 8_000
    checkpoint = read_checkpoint(run_dir / "checkpoint.json")
    assert len(checkpoint.parts) == N_PATIENTS // 8_000
    for part in checkpoint.parts:
        patients = sum(loc.patients for loc in checkpoint.shards if loc.file == part.number)
        assert patients == 8_000
    assert_same_run(run_dir, reference)


def test_a_failed_run_resumes_from_its_checkpoint_and_equals_an_uninterrupted_run(
    tmp_path, reference
):
    run_dir = tmp_path / "run"
    failed_run(run_dir)
    checkpoint = read_checkpoint(run_dir / "checkpoint.json")
    done = {loc.shard for loc in checkpoint.shards}
    assert done and 40 not in done and len(done) < params().shard_count
    manifest = resume_run(run_dir, PipelineOptions(workers=2))
    assert manifest.status == "completed" and manifest.resumes == 1 and manifest.error == ""
    assert manifest.patients == N_PATIENTS
    assert_same_run(run_dir, reference)


def test_a_cancelled_run_resumes_with_only_the_missing_shards_simulated(tmp_path):
    # Cancel early in a cohort large enough that a busy machine, slow to start the watcher's
    # thread, still catches the run before it completes.
    big = params(n_patients=600_000)
    run_dir = tmp_path / "run"
    watcher = Watcher(0.05, lambda supervisor, sample: supervisor.cancel("test"))
    options = PipelineOptions(workers=1, checkpoint_every=20_000)
    cancelled = run_pipeline(load_protocol(V1_PROTOCOL), big, run_dir, options, watcher.attach)
    assert cancelled.status == "cancelled"
    on_disk = sum(loc.patients for loc in read_checkpoint(run_dir / "checkpoint.json").shards)
    assert 0 < on_disk < big.n_patients
    resumed_from: list[int] = []
    manifest = resume_run(
        run_dir,
        PipelineOptions(workers=1),
        on_started=lambda supervisor: resumed_from.append(supervisor.resumed_patients),
    )
    assert resumed_from == [on_disk]
    assert manifest.status == "completed" and manifest.patients == big.n_patients
    assert manifest.checkpoint_every == 20_000, "a resumed run keeps its checkpoint interval"
    reference_dir = tmp_path / "reference"
    run_pipeline(load_protocol(V1_PROTOCOL), big, reference_dir, PipelineOptions(workers=1))
    assert_same_run(run_dir, contents(reference_dir))


def test_shards_cut_into_parts_and_half_written_are_completed_without_duplicates(
    tmp_path, reference
):
    run_dir = tmp_path / "run"
    # Small slots cut every shard into parts; every part closes its own file (roll_bytes=1);
    # the disk fills part-way, so the checkpoint holds some shards only in part.
    options = PipelineOptions(
        workers=1, slot_bytes=16 << 10, roll_bytes=1, writer_fail_after_bytes=150_000
    )
    with pytest.raises(WriterFailedError):
        run_pipeline(load_protocol(V1_PROTOCOL), params(), run_dir, options)
    checkpoint = read_checkpoint(run_dir / "checkpoint.json")
    parts_on_disk: dict[int, int] = {}
    for location in checkpoint.shards:
        parts_on_disk[location.shard] = parts_on_disk.get(location.shard, 0) + 1
    part_counts = {loc.shard: loc.part_count for loc in checkpoint.shards}
    assert any(parts_on_disk[s] < part_counts[s] for s in parts_on_disk), "no half-written shard"
    # Different options on resume: the run's own slot size and compression still apply.
    manifest = resume_run(run_dir, PipelineOptions(workers=2, slot_bytes=4 << 20))
    assert manifest.status == "completed" and manifest.compression == "zstd"
    assert manifest.slot_bytes == 16 << 10
    final = read_checkpoint(run_dir / "checkpoint.json")
    keys = [(loc.shard, loc.part) for loc in final.shards]
    assert len(keys) == len(set(keys)), "a shard part was written twice"
    assert_same_run(run_dir, reference)


def test_resume_discards_everything_the_checkpoint_does_not_list(tmp_path, reference):
    run_dir = tmp_path / "run"
    failed_run(run_dir)
    paths = RunPaths(run_dir)
    checkpoint = read_checkpoint(paths.checkpoint)
    listed = {p.patients_file for p in checkpoint.parts}
    # What a crash leaves: a pair renamed after the last checkpoint, temporaries, old
    # statistics, and shared memory of a supervisor that no longer exists.
    last = max(p.number for p in checkpoint.parts)
    planted = []
    for table in ("patients", "visits"):
        source = paths.part_file(table, last)
        extra = paths.part_file(table, last + 1)
        extra.write_bytes(source.read_bytes())
        temporary = paths.table_dir(table) / f".part-{last + 2:05d}.parquet.tmp"
        temporary.write_bytes(b"half a file")
        planted += [extra, temporary]
    paths.stats.write_bytes(b"{}")
    planted.append(paths.stats)
    dead_pid = _dead_pid()
    segment = SHM_DIR / f"amdsim-{run_dir.name}-{dead_pid}-0123abcd"
    segment.write_bytes(bytes(64))
    discarded: list[list[str]] = []
    resume_run(run_dir, on_started=lambda supervisor: discarded.append(supervisor.discarded))
    assert not segment.exists()
    assert set(discarded[0]) == {
        *(str(path.relative_to(run_dir)) for path in planted),
        str(segment),
    }
    assert listed <= {p.name for p in paths.part_files("patients")}
    assert_same_run(run_dir, reference)


def test_resume_refuses_a_completed_run_and_one_that_is_still_running(tmp_path):
    run_dir = tmp_path / "run"
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL), params(), run_dir, PipelineOptions(workers=1)
    )
    with pytest.raises(RunStateError, match="is already complete; there is nothing to resume"):
        resume_run(run_dir)
    me = psutil.Process()
    write_manifest(
        run_dir / "manifest.json",
        msgspec.structs.replace(
            manifest,
            status="running",
            supervisor_pid=me.pid,
            supervisor_started=me.create_time(),
        ),
    )
    with pytest.raises(RunStateError, match=rf"is still running \(supervisor pid {me.pid}\)"):
        resume_run(run_dir)
    lock = RunLock(RunPaths(run_dir))
    try:
        with pytest.raises(RunStateError, match="is in use by another amdsim process"):
            resume_run(run_dir)
    finally:
        lock.release()
    assert read_manifest(run_dir / "manifest.json").status == "running", "left untouched"


def test_restart_discards_the_run_and_runs_it_again_from_nothing(tmp_path, reference):
    run_dir = tmp_path / "run"
    failed_run(run_dir)
    stray = run_dir / "patients" / "part-09999.parquet"
    stray.write_bytes(b"not parquet")
    manifest = restart_run(run_dir, PipelineOptions(workers=2))
    assert manifest.status == "completed" and manifest.resumes == 0 and manifest.error == ""
    assert manifest.run_id == "run" and not stray.exists()
    assert_same_run(run_dir, reference)


# -- kill -9 of the whole process group, through the CLI ---------------------------------

KILL_PATIENTS = 400_000
KILL_SHARD = 2_000
KILL_POINTS = 5
KILL_SEED = 20261129


def _cli(runs: Path, *args: str) -> list[str]:
    if AMDSIM is None:
        pytest.fail("the amdsim console script is not installed (pip install -e .)")
    return [AMDSIM, *args, "--runs-dir", str(runs)]


def _run_args() -> list[str]:
    return [
        "run",
        "--patients",
        str(KILL_PATIENTS),
        "--years",
        "3",
        "--seed",
        "11",
        "--shard-size",
        str(KILL_SHARD),
        "--workers",
        "2",
        "--checkpoint-every",
        "16000",
    ]


def _start(command: list[str], run_dir: Path | None, runs: Path) -> tuple[subprocess.Popen, Path]:
    """Start `command` in its own session; return once its run has written its manifest.

    For a new run `run_dir` is None and the one directory appearing under `runs` is it.
    """
    before = run_dir and (run_dir / "manifest.json").stat().st_mtime_ns
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = run_dir or next((p for p in runs.glob("*") if p.is_dir()), None)
        manifest = found / "manifest.json" if found else None
        if (
            manifest is not None
            and manifest.is_file()
            and manifest.stat().st_mtime_ns != before
            and read_manifest(manifest).status == "running"
        ):
            return process, found
        if process.poll() is not None:
            pytest.fail(f"{command} ended before its run started: {process.stderr.read()}")
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"{command} did not start within 60 s")


def _patients_on_disk(run_dir: Path) -> int:
    checkpoint = run_dir / "checkpoint.json"
    if not checkpoint.is_file():
        return 0
    return sum(location.patients for location in read_checkpoint(checkpoint).shards)


def _kill_group_when(process: subprocess.Popen, run_dir: Path, patients: int, jitter_s: float):
    """SIGKILL the process's whole group (supervisor, workers, writer) `jitter_s` after its
    checkpoint first lists at least `patients` patients: a point set by progress, not by a
    clock, so a faster or slower machine kills at the same stage of the run."""
    while _patients_on_disk(run_dir) < patients:
        if process.poll() is not None:
            pytest.fail(f"the run ended before {patients:,} patients were on disk")
        time.sleep(0.002)
    time.sleep(jitter_s)
    if process.poll() is not None:
        pytest.fail("the run ended before the kill; lengthen the run")
    group = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    process.stderr.close()
    _, alive = psutil.wait_procs([p for p in map(_process, group) if p], timeout=5)
    assert not alive, f"processes survived kill -9 of the group: {alive}"


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[pa.Table, pa.Table, bytes]:
    """The same run, never interrupted."""
    runs = tmp_path_factory.mktemp("uninterrupted")
    process, run_dir = _start(_cli(runs, *_run_args()), None, runs)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return contents(run_dir)


def _kill_points() -> list[tuple[int, float]]:
    """Seeded random points: one in each fifth of the run (patients on disk, up to 85%), each
    a random 0-40 ms later, between checkpoints, while files are being written."""
    rng = np.random.default_rng(KILL_SEED)
    width = 0.85 / KILL_POINTS
    return [
        (int((i + rng.uniform()) * width * KILL_PATIENTS), rng.uniform(0.0, 0.04))
        for i in range(KILL_POINTS)
    ] + [(0, 0.0)]  # and during start-up, before anything is on disk


# Two kill points and the start-up one in the fast suite; the rest with the slow tests.
@pytest.mark.parametrize(
    "point",
    [
        pytest.param(i, marks=pytest.mark.slow) if 1 < i < KILL_POINTS else i
        for i in range(KILL_POINTS + 1)
    ],
)
def test_kill_9_of_the_whole_run_at_a_random_point_then_resume_equals_an_uninterrupted_run(
    tmp_path, uninterrupted, point
):
    patients, jitter_s = _kill_points()[point]
    runs = tmp_path / "runs"
    runs.mkdir()
    process, run_dir = _start(_cli(runs, *_run_args()), None, runs)
    _kill_group_when(process, run_dir, patients, jitter_s)
    assert read_manifest(run_dir / "manifest.json").status == "running"
    listing = subprocess.run(
        _cli(runs, "list", "--json"), check=True, capture_output=True, text=True
    )
    assert [entry["status"] for entry in json.loads(listing.stdout)] == ["interrupted"]
    if point == 0:  # kill the resume too, part-way: resuming twice must work as well
        process, _ = _start(_cli(runs, "resume", run_dir.name), run_dir, runs)
        halfway = (_patients_on_disk(run_dir) + KILL_PATIENTS) // 2
        _kill_group_when(process, run_dir, halfway, jitter_s)
    resumed = subprocess.run(
        _cli(runs, "resume", run_dir.name, "--json"),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["status"] == "completed"
    assert document["summary"]["patients"] == KILL_PATIENTS
    assert document["resumes"] == (2 if point == 0 else 1)
    assert_same_run(run_dir, uninterrupted)
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"
    assert not [p for p in SHM_DIR.iterdir() if p.name.startswith(f"amdsim-{run_dir.name}")]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
