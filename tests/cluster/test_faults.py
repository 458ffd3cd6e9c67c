"""Faults on a cluster: a Dask worker killed mid-run or right after renaming its first part
file, and a cancel from the dashboard's socket. Each ends with the uninterrupted run's rows
and statistics, no temporary or unlisted file, and no future left on the scheduler."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from engine.cluster import resume_on_cluster, run_on_cluster
from engine.cluster.run import ClusterFaults
from engine.manifest import read_manifest
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from tests.cluster.conftest import local_cluster
from tests.cluster.test_identity import _assert_clean
from tests.engine.test_resume import _patients_on_disk
from tests.engine.test_v2_pipeline import assert_same, on_disk
from viz.launcher import request_cancel

PARAMS = RunParameters(n_patients=120_000, years=5.0, seed=17, shard_size=2000)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "local"
    run_pipeline(load_protocol(DEFAULT_PROTOCOL), PARAMS, run_dir, PipelineOptions(workers=2))
    return on_disk(run_dir, PARAMS.n_patients)


@pytest.fixture
def client():
    """A cluster of its own: a killed worker's replacement must not outlive the test."""
    yield from local_cluster(2)


class Background:
    """A cluster run in a thread, with the `ClusterRun` once it has started."""

    def __init__(self, client, run_dir: Path, faults: ClusterFaults | None = None) -> None:
        self.run = None
        self.error: BaseException | None = None
        self.started = threading.Event()

        def on_started(run) -> None:
            self.run = run
            self.started.set()

        def target() -> None:
            try:
                run_on_cluster(
                    client,
                    load_protocol(DEFAULT_PROTOCOL),
                    PARAMS,
                    run_dir,
                    None,
                    on_started,
                    faults,
                )
            except BaseException as exc:
                self.error = exc
                self.started.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.started.wait(60)

    def wait_for(self, run_dir: Path, patients: int) -> None:
        deadline = time.monotonic() + 120
        while _patients_on_disk(run_dir) < patients:
            assert self.thread.is_alive() and time.monotonic() < deadline, "ended too soon"
            time.sleep(0.005)


def _our_tasks(client, run_id: str) -> list[str]:
    keys = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])
    return [key for key in keys if run_id in key]


def test_a_worker_killed_mid_run_is_retried_and_the_rows_are_unchanged(
    tmp_path, client, reference
) -> None:
    run_dir = tmp_path / "run"
    background = Background(client, run_dir)
    background.wait_for(run_dir, 10_000)
    victim = next(iter(client.run(os.getpid).values()))
    os.kill(victim, signal.SIGKILL)
    background.thread.join(120)
    assert background.error is None, background.error
    assert read_manifest(run_dir / "manifest.json").status == "completed"
    assert victim not in client.run(os.getpid).values(), "the worker was not killed"
    assert_same(on_disk(run_dir, PARAMS.n_patients), reference)
    _assert_clean(run_dir)


def test_a_worker_killed_right_after_renaming_its_first_part_file_duplicates_nothing(
    tmp_path, client, reference
) -> None:
    run_dir = tmp_path / "run"
    marker = tmp_path / "killed"
    faults = ClusterFaults(kill_marker=str(marker), kill_when="renamed")
    manifest = run_on_cluster(
        client, load_protocol(DEFAULT_PROTOCOL), PARAMS, run_dir, None, None, faults
    )
    assert marker.exists(), "no worker was killed"
    assert manifest.status == "completed"
    assert_same(on_disk(run_dir, PARAMS.n_patients), reference)
    _assert_clean(run_dir)  # the orphaned part file is gone, not read


def test_cancel_from_the_dashboard_stops_within_seconds_and_resumes_identically(
    tmp_path, client, reference
) -> None:
    run_dir = tmp_path / "run"
    background = Background(client, run_dir)
    background.wait_for(run_dir, 5_000)
    started = time.monotonic()
    assert request_cancel(run_dir)
    background.thread.join(30)
    assert time.monotonic() - started < 5, "cancel took longer than 5 s"
    assert background.error is None, background.error
    manifest = read_manifest(run_dir / "manifest.json")
    assert manifest.status == "cancelled" and manifest.patients < PARAMS.n_patients
    _assert_clean(run_dir)
    time.sleep(0.5)  # the scheduler forgets cancelled futures asynchronously
    assert not _our_tasks(client, run_dir.name), "futures left on the scheduler"
    resumed = resume_on_cluster(client, run_dir)
    assert resumed.status == "completed" and resumed.resumes == 1
    assert_same(on_disk(run_dir, PARAMS.n_patients), reference)
    _assert_clean(run_dir)
