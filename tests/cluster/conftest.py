"""Dask clusters for the cluster tests: LocalClusters in this process, and a real scheduler
with two `dask worker` processes on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed")

DASK = str(Path(sys.executable).parent / "dask")


def local_cluster(workers: int) -> Iterator[distributed.Client]:
    """A LocalCluster of single-threaded worker processes and a client for it."""
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def two_workers() -> Iterator[distributed.Client]:
    yield from local_cluster(2)


@pytest.fixture(scope="module")
def three_workers() -> Iterator[distributed.Client]:
    yield from local_cluster(3)


class Scheduler:
    """A `dask scheduler` and its `dask worker` processes, each in its own session."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.file = directory / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def start(self, workers: int) -> None:
        self._spawn(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.file),
            ]
        )
        self.address = self._address_from_file(deadline=time.monotonic() + 60)
        for number in range(workers):
            self._spawn(
                [
                    DASK,
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--name",
                    f"test-worker-{number}",
                    "--local-directory",
                    str(self.directory / f"worker-{number}"),
                ]
            )
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def _address_from_file(self, deadline: float) -> str:
        """The scheduler's address, once its scheduler file is complete.

        The scheduler creates the file before it has written it, so an empty or partial file
        means "not yet", not an error.
        """
        while True:
            try:
                return str(json.loads(self.file.read_text())["address"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                scheduler = self.processes[0]
                assert scheduler.poll() is None, (
                    f"dask scheduler exited with code {scheduler.returncode}; "
                    f"see {self.directory / 'process-0.log'}"
                )
                assert time.monotonic() < deadline, "dask scheduler wrote no address in 60 s"
                time.sleep(0.1)

    def _spawn(self, command: list[str]) -> None:
        log = open(self.directory / f"process-{len(self.processes)}.log", "wb")  # noqa: SIM115
        self.processes.append(
            subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        )
        log.close()

    def worker_pids(self) -> list[int]:
        """The pids of the worker processes (the nannies' children)."""
        pids = []
        for process in self.processes[1:]:
            pids += [c.pid for c in psutil.Process(process.pid).children(recursive=True)]
        return pids

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[Scheduler]:
    """A real scheduler and two workers on 127.0.0.1 (not a LocalCluster)."""
    running = Scheduler(tmp_path_factory.mktemp("dask"))
    try:
        running.start(workers=2)
        yield running
    finally:
        running.stop()
