"""Stopping a run from another process: cancel over its metrics socket, wait, or say why not."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgspec
import psutil
import pytest

from engine.errors import RunStateError
from engine.manifest import Manifest
from engine.run_control import cancel_and_wait
from tests.engine.test_registry import manifest

# A stand-in supervisor: serves a metrics socket and exits on "cancel" unless told to ignore it.
_SUPERVISOR = """
import sys, threading
from pathlib import Path
from ipc.metrics import MetricsPublisher
stop = threading.Event()
obey = sys.argv[2] == "obey"
publisher = MetricsPublisher(Path(sys.argv[1]), on_request=lambda _: obey and stop.set())
print("ready", flush=True)
stop.wait(60)
publisher.close()
"""


def supervisor(tmp_path: Path, obey: bool) -> tuple[subprocess.Popen[str], Manifest]:
    socket_path = tmp_path / "metrics.sock"
    process = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR, str(socket_path), "obey" if obey else "ignore"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    me = psutil.Process(process.pid)
    running = msgspec.structs.replace(
        manifest("20261202-110000-0000", status="running"),
        supervisor_pid=me.pid,
        supervisor_started=me.create_time(),
        metrics_address=str(socket_path),
    )
    return process, running


def test_cancel_and_wait_returns_once_the_cancelled_supervisor_is_gone(tmp_path):
    process, running = supervisor(tmp_path, obey=True)
    try:
        cancel_and_wait(running, timeout_s=30)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


def test_delete_force_says_so_when_a_cancelled_run_does_not_stop_in_time(tmp_path):
    """Case 6: the wait is bounded; a run that does not stop is left alone with one line."""
    process, running = supervisor(tmp_path, obey=False)
    try:
        started = time.monotonic()
        with pytest.raises(RunStateError, match=r"still running after 0.5 s; nothing was deleted"):
            cancel_and_wait(running, timeout_s=0.5)
        assert time.monotonic() - started < 10
        assert process.poll() is None, "no signal is sent: the run is left as it is"
    finally:
        process.kill()
        process.wait()


def test_a_run_whose_socket_cannot_be_reached_is_not_cancelled_and_says_why(tmp_path):
    process, running = supervisor(tmp_path, obey=True)
    try:
        unreachable = msgspec.structs.replace(running, metrics_address=str(tmp_path / "nope"))
        with pytest.raises(RunStateError, match=r"could not ask run .* to cancel"):
            cancel_and_wait(unreachable, timeout_s=1)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()


def test_a_run_without_a_live_supervisor_needs_no_cancel(tmp_path):
    cancel_and_wait(manifest("20261202-110000-0001", status="running"), timeout_s=0.1)
