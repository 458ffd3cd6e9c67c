"""Streaming runs: same rows as in-process whatever the workers, and clean failure and cancel."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import msgspec
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from engine import run_simulation
from engine.errors import AmdsimError, ParameterError, WorkerCrashedError, WriterFailedError
from engine.manifest import read_checkpoint, read_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor, records, run_pipeline
from engine.pipeline.processes import CONTEXT, describe_exit, start_process
from engine.pipeline.worker import WorkerConfig, worker_main
from engine.resume import check_resumable, load_checkpoint
from engine.run_dir import RunPaths, write_atomically
from ipc.channel import Channel
from ipc.messages import Assign, Stop
from ipc.metrics import MetricsSubscriber
from tests.cli.test_cli import AMDSIM, amdsim
from tests.helpers import V1_PROTOCOL

N_PATIENTS = 12_000
SHARD_SIZE = 1_000
YEARS = 3
SEED = 17


def params(n_patients: int = N_PATIENTS, shard_size: int = SHARD_SIZE) -> RunParameters:
    return RunParameters(n_patients=n_patients, years=YEARS, seed=SEED, shard_size=shard_size)


def canonical(table: pa.Table, keys: list[str]) -> dict[str, np.ndarray]:
    """Columns as numpy after sorting by `keys`; dictionary columns as codes, nulls as -1."""
    table = table.unify_dictionaries().combine_chunks().sort_by([(k, "ascending") for k in keys])
    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.indices
        if pa.types.is_integer(column.type):
            column = pc.fill_null(column, -1)
        columns[name] = column.to_numpy(zero_copy_only=False)
    return columns


def read_run(run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    patients = ds.dataset(run_dir / "patients", format="parquet").to_table()
    visits = ds.dataset(run_dir / "visits", format="parquet").to_table()
    return canonical(patients, ["patient_id"]), canonical(visits, ["patient_id", "visit"])


def assert_same(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert left.keys() == right.keys()
    for name, values in left.items():
        assert np.array_equal(values, right[name]), f"column {name} differs"


def in_process_rows(n_patients: int, years: float, seed: int, shard_size: int):
    """(patients, visits, totals) of the same run made in this process, in canonical order."""
    results = run_simulation(
        load_protocol(V1_PROTOCOL), n_patients, years, seed, shard_size=shard_size, in_memory=True
    )
    patients = pa.Table.from_batches(list(results.iterate_patients()))
    visits = pa.Table.from_batches(list(results.iterate_visits()))
    return (
        canonical(patients, ["patient_id"]),
        canonical(visits, ["patient_id", "visit"]),
        results.totals,
    )


@pytest.fixture(scope="module")
def in_process():
    return in_process_rows(N_PATIENTS, YEARS, SEED, SHARD_SIZE)


@pytest.mark.parametrize(
    ("workers", "slot_bytes"),
    [(1, 4 << 20), (2, 64 << 10), (3, 256 << 10)],
    ids=["1-worker", "2-workers-small-slots", "3-workers"],
)
def test_output_equals_the_in_process_run_for_any_workers_and_slot_size(
    tmp_path, in_process, workers, slot_bytes
):
    options = PipelineOptions(workers=workers, slot_bytes=slot_bytes)
    manifest = run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run", options)
    assert manifest.status == "completed"
    patients, visits = read_run(tmp_path / "run")
    assert_same(patients, in_process[0])
    assert_same(visits, in_process[1])
    assert manifest.totals == in_process[2]
    index = read_checkpoint(tmp_path / "run" / "checkpoint.json")
    if slot_bytes < 100_000:
        assert max(location.part_count for location in index.shards) > 1, (
            "small slots should split shards"
        )


def test_the_run_directory_is_one_dataset_with_manifest_index_and_metadata(tmp_path):
    run_dir = tmp_path / "run"
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL),
        params(),
        run_dir,
        PipelineOptions(workers=2, roll_bytes=200_000),
    )
    assert manifest.status == "completed" and manifest.finished is not None
    assert manifest.shard_count == N_PATIENTS // SHARD_SIZE
    assert manifest.patients == N_PATIENTS
    assert manifest.bytes_on_disk / manifest.visits <= 3.0
    assert manifest.compression_ratio > 3
    assert manifest.bytes_on_disk == sum(p.stat().st_size for p in run_dir.rglob("part-*.parquet"))
    index = read_checkpoint(run_dir / "checkpoint.json")
    assert len(index.parts) > 1, "a small roll size should give several part files"
    assert sum(location.patients for location in index.shards) == N_PATIENTS
    assert sum(location.visits for location in index.shards) == manifest.visits
    assert sorted(location.shard for location in index.shards) == list(range(manifest.shard_count))
    # One patient is found by reading one row group, located by the index.
    location = next(loc for loc in index.shards if loc.shard == 5)
    part = next(p for p in index.parts if p.number == location.file)
    visits = pq.ParquetFile(run_dir / "visits" / part.visits_file).read_row_group(
        location.visits_row_group
    )
    assert set(visits.column("patient_id").to_pylist()) == set(range(5_000, 6_000))
    metadata = pq.ParquetFile(run_dir / "patients" / part.patients_file).metadata.metadata
    assert metadata[b"amdsim.run_id"] == b"run"
    assert json.loads(metadata[b"amdsim.parameters"])["n_patients"] == N_PATIENTS
    assert not list(run_dir.rglob(".*.tmp"))


def test_duckdb_reads_the_run_directory_as_one_table(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL), params(), tmp_path / "run", PipelineOptions(workers=1)
    )
    query = f"select count(*), count(distinct patient_id) from read_parquet('{tmp_path}/run/visits/*.parquet')"
    rows = duckdb.connect().execute(query).fetchone()
    assert rows == (manifest.visits, N_PATIENTS)


def test_a_run_directory_must_be_new(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("x")
    with pytest.raises(ParameterError, match="already exists and is not empty"):
        run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run")


class Watcher:
    """Follows a run's metrics in a thread and acts once enough patients are done."""

    def __init__(self, at_fraction: float, action) -> None:
        self.at_fraction = at_fraction
        self.action = action
        self.samples = []
        self.acted_at: float | None = None

    def attach(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        with MetricsSubscriber(self.supervisor.metrics_address) as subscriber:
            for sample in subscriber:
                self.samples.append(sample)
                if self.acted_at is None and sample.fraction_done >= self.at_fraction:
                    self.acted_at = time.monotonic()
                    self.action(self.supervisor, sample)


def kill_a_worker(supervisor: Supervisor, sample) -> None:
    pid = next(p.pid for p in sample.processes if p.role == "worker")
    os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_mid_run_is_replaced_and_the_output_is_unchanged(tmp_path):
    big = params(n_patients=150_000, shard_size=1_000)
    watcher = Watcher(0.2, kill_a_worker)
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL),
        big,
        tmp_path / "run",
        PipelineOptions(workers=2),
        watcher.attach,
    )
    watcher.thread.join(5)
    assert watcher.acted_at is not None and manifest.status == "completed"
    expected = run_simulation(
        load_protocol(V1_PROTOCOL), big.n_patients, YEARS, SEED, shard_size=1_000, in_memory=True
    )
    patients, visits = read_run(tmp_path / "run")
    assert_same(
        visits,
        canonical(pa.Table.from_batches(list(expected.iterate_visits())), ["patient_id", "visit"]),
    )
    assert len(patients["patient_id"]) == big.n_patients
    assert manifest.totals == expected.totals


def test_a_killed_writer_is_reported_with_the_signal_that_killed_it(tmp_path):
    """Not "died with exit code None": how the writer ended, in words."""

    def kill_the_writer(supervisor: Supervisor, sample) -> None:
        os.kill(next(p.pid for p in sample.processes if p.role == "writer"), signal.SIGKILL)

    watcher = Watcher(0.05, kill_the_writer)
    big = params(n_patients=2_000_000, shard_size=4_096)
    with pytest.raises(WriterFailedError) as raised:
        run_pipeline(
            load_protocol(V1_PROTOCOL),
            big,
            tmp_path / "run",
            PipelineOptions(workers=1),
            watcher.attach,
        )
    assert str(raised.value) == (
        "the writer process was killed by SIGKILL (signal 9) without finishing"
    )


def test_describe_exit_says_how_a_child_ended():
    ended = [CONTEXT.Process(target=os._exit, args=(code,)) for code in (0, 3)]
    killed = CONTEXT.Process(target=time.sleep, args=(30,))
    for process in [*ended, killed]:
        start_process(process)
    killed.terminate()
    assert [describe_exit(p) for p in [*ended, killed]] == [
        "exited with code 0",
        "exited with code 3",
        "was killed by SIGTERM (signal 15)",
    ]


def test_a_shard_failing_once_is_retried_and_the_run_completes(tmp_path, in_process):
    options = PipelineOptions(workers=2, worker_fail_shard=3, worker_fail_attempts=1)
    manifest = run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run", options)
    assert manifest.status == "completed"
    _, visits = read_run(tmp_path / "run")
    assert_same(visits, in_process[1])


def test_a_shard_that_always_fails_fails_the_run_with_the_workers_traceback(tmp_path):
    options = PipelineOptions(
        workers=2, worker_fail_shard=3, worker_fail_attempts=99, max_attempts=2
    )
    with pytest.raises(
        WorkerCrashedError,
        match=r"shards 0-11 failed on all 2 attempts; last error: RuntimeError: injected failure in shard 3",
    ) as caught:
        run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run", options)
    assert (
        "Traceback" in caught.value.traceback
        and "injected failure in shard 3" in caught.value.traceback
    )
    manifest = read_manifest(tmp_path / "run" / "manifest.json")
    assert manifest.status == "failed" and "injected failure" in manifest.error


@pytest.mark.parametrize("how", ["api", "metrics-socket"])
def test_cancel_mid_run_stops_everything_within_five_seconds(tmp_path, how):
    def cancel(supervisor: Supervisor, sample) -> None:
        if how == "api":
            supervisor.cancel("test")
        else:
            with MetricsSubscriber(supervisor.metrics_address) as subscriber:
                subscriber.request_cancel()

    watcher = Watcher(0.1, cancel)
    big = params(n_patients=2_000_000, shard_size=4_096)
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL),
        big,
        tmp_path / "run",
        PipelineOptions(workers=2),
        watcher.attach,
    )
    stopped_s = time.monotonic() - watcher.acted_at
    assert manifest.status == "cancelled"
    assert stopped_s < 5.0, f"stopping took {stopped_s:.1f} s"
    assert 0 < manifest.patients < big.n_patients
    pids = {p.pid for sample in watcher.samples for p in sample.processes if p.role != "supervisor"}
    assert pids and not [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    # What was written is complete, readable Parquet.
    patients, _ = read_run(tmp_path / "run")
    assert len(patients["patient_id"]) == manifest.patients


def test_disk_that_stays_full_reports_the_writer_error_and_leaves_the_last_good_manifest(
    tmp_path, monkeypatch
):
    """The writer hits ENOSPC, and the supervisor's own manifest write fails too: the
    writer's error is what the run raises, the manifest is the last good one, no temporary
    file is left (injected at the write; see the tmpfs test for a real full disk)."""

    def disk_still_full(path, manifest):
        path.with_name(f".{path.name}.tmp").write_bytes(b"")  # what open() left before failing
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "write_manifest", disk_still_full)
    options = PipelineOptions(workers=1, roll_bytes=100_000, writer_fail_after_bytes=350_000)
    with pytest.raises(WriterFailedError) as raised:
        run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run", options)
    message = str(raised.value)
    assert message.startswith("the writer failed: OSError: [Errno 28] No space left on device")
    assert "could not record the run as failed (No space left on device)" in message
    run_dir = tmp_path / "run"
    assert read_manifest(run_dir / "manifest.json").status == "running"  # the last good one
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    target.write_bytes(b"good")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


@pytest.fixture
def small_file_system(tmp_path):
    """A 64 MiB tmpfs mounted for the test (needs root; skipped where mounting is refused)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_that_stays_full_on_a_real_file_system_fails_in_one_line_and_shows_interrupted(
    small_file_system,
):
    """A CLI run whose disk fills up and stays full while it stops (a ballast file takes
    every byte freed): one line naming the writer's ENOSPC, the last good manifest, no
    temporary file, and `amdsim list` derives ``interrupted``."""
    runs = small_file_system / "runs"
    process = subprocess.Popen(
        [
            *(AMDSIM, "run", "--patients", "300000", "--workers", "1"),
            *("--checkpoint-every", "20000", "--runs-dir", str(runs)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/patients/part-*.parquet")) and process.poll() is None:
        assert time.monotonic() < deadline, "the run wrote no part file within 60 s"
        time.sleep(0.02)

    def keep_full() -> None:
        with open(small_file_system / "ballast", "wb", buffering=0) as ballast:
            while process.poll() is None:
                try:
                    ballast.write(bytes(4096))
                except OSError:
                    time.sleep(0.002)

    filler = threading.Thread(target=keep_full)
    filler.start()
    try:
        _, err = process.communicate(timeout=120)
    finally:
        filler.join()
    assert process.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: the writer failed: OSError: [Errno 28]"), err
    assert "No space left on device" in lines[0]
    (run_dir,) = (p.parent for p in runs.glob("*/manifest.json"))
    assert read_manifest(run_dir / "manifest.json").status == "running"
    assert not list(small_file_system.rglob(".*.tmp")), "temporary files left behind"
    (small_file_system / "ballast").unlink()
    listed = amdsim("list", "--runs-dir", str(runs), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [run["status"] for run in json.loads(listed.stdout)] == ["interrupted"]


def test_disk_full_in_the_writer_fails_the_run_and_leaves_no_half_written_file(tmp_path):
    options = PipelineOptions(
        workers=1, writer_lanes=2, roll_bytes=100_000, writer_fail_after_bytes=350_000
    )
    with pytest.raises(
        WriterFailedError, match=r"the writer failed: OSError: \[Errno 28\] No space left on device"
    ):
        run_pipeline(load_protocol(V1_PROTOCOL), params(), tmp_path / "run", options)
    run_dir = tmp_path / "run"
    manifest = read_manifest(run_dir / "manifest.json")
    assert manifest.status == "failed" and "No space left on device" in manifest.error
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"
    finished = list(run_dir.rglob("part-*.parquet"))
    assert finished, "parts closed before the failure should remain"
    pairs = {path.name for path in (run_dir / "patients").glob("part-*.parquet")}
    assert pairs == {path.name for path in (run_dir / "visits").glob("part-*.parquet")}, (
        "half a pair"
    )
    for path in finished:  # each has a footer: complete files, readable to the last row
        assert pq.ParquetFile(path).metadata.num_rows > 0


def test_metrics_arrive_at_least_twice_a_second_with_every_process(tmp_path):
    watcher = Watcher(2.0, lambda *_: None)  # never acts; just records
    big = params(n_patients=400_000, shard_size=4_096)
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL),
        big,
        tmp_path / "run",
        PipelineOptions(workers=2),
        watcher.attach,
    )
    watcher.thread.join(5)
    samples = watcher.samples
    assert manifest.status == "completed" and len(samples) >= 3
    gaps = np.diff([s.time for s in samples])
    assert gaps.max() <= 0.75, f"largest gap between samples {gaps.max():.2f} s"
    done = [s.patients_done for s in samples]
    assert done == sorted(done) and done[-1] == big.n_patients
    roles = {p.role for s in samples for p in s.processes}
    assert roles == {"supervisor", "worker", "writer"}
    assert max(sum(p.role == "worker" for p in s.processes) for s in samples) == 2
    assert all(p.rss_bytes > 0 for s in samples for p in s.processes)
    for role in ("supervisor", "worker", "writer"):  # a just-spawned worker may still be small
        assert max(p.rss_bytes for s in samples for p in s.processes if p.role == role) > 20 << 20


def _start_cli_run(
    tmp_path: Path, patients: int, new_session: bool = False
) -> tuple[subprocess.Popen, Path, MetricsSubscriber]:
    if AMDSIM is None:
        pytest.fail("the amdsim console script is not installed")
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [AMDSIM, "run", "--patients", str(patients), "--workers", "1", "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        manifests = list(runs.glob("*/manifest.json"))
        if manifests:
            try:
                manifest = read_manifest(manifests[0])
                subscriber = MetricsSubscriber(manifest.metrics_address)
                return process, manifests[0].parent, subscriber
            except (OSError, ValueError):
                pass
        time.sleep(0.05)
    process.kill()
    pytest.fail("the CLI run did not start within 30 s")


def _children_of_run(subscriber: MetricsSubscriber) -> set[int]:
    while True:
        sample = subscriber.next(timeout_s=10)
        if sample.patients_done > 0:
            return {p.pid for p in sample.processes if p.role != "supervisor"}


def _wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
        }
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_on_the_cli_cancels_the_run_and_exits_130_or_143(tmp_path, sent):
    process, run_dir, subscriber = _start_cli_run(tmp_path, 5_000_000)
    children = _children_of_run(subscriber)
    subscriber.close()
    process.send_signal(sent)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 128 + sent, err
    assert f"cancelled: interrupted by {sent.name}" in err
    assert read_manifest(run_dir / "manifest.json").status == "cancelled"
    assert not _wait_gone(children, 5.0)


@pytest.mark.parametrize(
    ("sent", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["term", "int"]
)
def test_sigterm_or_sigint_to_the_process_group_cancels_quietly_and_resumably(
    tmp_path, sent, exit_code
):
    """What `timeout`, `kill -TERM -- -PGID`, systemd, a container stop or Ctrl-C in a
    terminal do: every process of the run gets the signal, and the run ends as a cancel."""
    process, run_dir, subscriber = _start_cli_run(tmp_path, 5_000_000, new_session=True)
    children = _children_of_run(subscriber)
    subscriber.close()
    os.killpg(process.pid, sent)
    _, err = process.communicate(timeout=15)
    assert process.returncode == exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cancelled: interrupted by {sent.name}"), err
    manifest = read_manifest(run_dir / "manifest.json")
    assert manifest.status == "cancelled"
    assert not _wait_gone(children, 5.0)
    paths = RunPaths(run_dir)
    check_resumable(paths, manifest)
    assert load_checkpoint(paths, manifest).shards, "nothing written before the signal was kept"


def test_more_workers_than_shards_starts_only_what_has_work_and_stays_quiet(tmp_path):
    """`--workers 8 --patients 2000`: one shard, so one worker, and no tracebacks."""
    runs = tmp_path / "runs"
    result = amdsim("run", "--workers", "8", "--patients", "2000", "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (manifest_path,) = runs.glob("*/manifest.json")
    manifest = read_manifest(manifest_path)
    assert manifest.status == "completed"
    assert manifest.workers == manifest.shard_count == 1


def test_an_idle_worker_stopped_while_it_connects_exits_quietly(capfd):
    """A worker whose task came as the run ended (nobody listens on the channel any more)
    exits at once when told to stop: exit code 0, nothing on stderr."""
    channel = Channel(slot_count=2, slot_bytes=64 << 10, tag="idle-worker-test")
    config = WorkerConfig(
        channel=channel.spec, protocol=load_protocol(V1_PROTOCOL), parameters=params()
    )
    ours, theirs = CONTEXT.Pipe()
    worker = CONTEXT.Process(target=worker_main, args=(config, 1, theirs), daemon=True)
    try:
        start_process(worker)
        theirs.close()
        assert ours.poll(30), "the worker never said it was ready"
        ours.recv_bytes()  # WorkerReady
        ours.send_bytes(msgspec.msgpack.encode(Assign(task=1, shards=[0], attempt=0)))
        time.sleep(0.3)  # it is now retrying to connect
        ours.send_bytes(msgspec.msgpack.encode(Stop()))
        worker.join(5)
        assert worker.exitcode == 0
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
        ours.close()
        channel.close()
    assert capfd.readouterr().err == ""


def _segments_owned_by(pids: set[int]) -> set[str]:
    """amdsim segments (amdsim-<tag>-<owner pid>-<hex>) whose owner is one of `pids`."""
    owners = {str(pid) for pid in pids}
    return {
        name
        for name in os.listdir("/dev/shm")
        if name.startswith("amdsim-") and name.rsplit("-", 2)[-2] in owners
    }


def test_killing_the_supervisor_takes_its_children_and_memory_with_it(tmp_path):
    process, _, subscriber = _start_cli_run(tmp_path, 5_000_000)
    children = _children_of_run(subscriber)
    run_processes = children | {process.pid}
    subscriber.close()
    process.kill()
    process.communicate(timeout=10)
    assert not _wait_gone(children, 5.0), "children outlived the supervisor"
    deadline = time.monotonic() + 15
    leftover = None
    while time.monotonic() < deadline:
        leftover = _segments_owned_by(run_processes)
        if not leftover:
            break
        time.sleep(0.1)
    assert not leftover, f"shared memory left behind: {leftover}"


def test_a_start_refused_before_anything_runs_leaves_no_open_socket(tmp_path):
    """A run refused at start (here: its directory is a file) closes its wake-up sockets,
    so no "unclosed socket" ResourceWarning reaches the next command's output later."""
    import gc
    import warnings

    not_a_directory = tmp_path / "run"
    not_a_directory.write_text("")
    supervisor = Supervisor(
        load_protocol(V1_PROTOCOL), RunParameters(n_patients=2_000, years=1), not_a_directory
    )
    with pytest.raises((AmdsimError, OSError)):
        supervisor.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del supervisor
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_run_pipeline_refuses_a_recruitment_rate_too_slow_for_the_horizon(tmp_path):
    """A library caller of run_pipeline gets the CLI's refusal, before anything is created:
    300,000 patients at 150 a week cannot enrol within 2 years (they piled up on its last day)."""
    from engine.model.parameters import Recruitment

    params = RunParameters(
        n_patients=300_000,
        years=2.0,
        seed=1,
        recruitment=Recruitment(mode="rate", patients_per_week=150.0),
    )
    with pytest.raises(ParameterError, match="patients"):
        run_pipeline(load_protocol(V1_PROTOCOL), params, tmp_path / "run")
    assert not (tmp_path / "run").exists()
