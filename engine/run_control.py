"""Stopping a run from another process: ask it to cancel, then wait until it has ended.

A streaming run's supervisor listens on its metrics socket (`ipc.metrics`) for a ``cancel``
request, the same one the dashboard's Cancel button sends; it then stops its workers and
writer, records ``cancelled`` and exits. `cancel_and_wait` sends that request and waits,
for a bounded time, until the supervisor process is gone, so that a caller may then delete
the run's directory without pulling it from under a live process. No signal is ever sent:
the supervisor may be a process (a notebook, a dashboard) that must not be killed.

Does not cover: cancelling a run in this process (`Supervisor.cancel`).
"""

from __future__ import annotations

import contextlib
import time

import psutil

from engine.errors import RunStateError
from engine.manifest import Manifest
from engine.run_liveness import supervisor_process
from ipc.metrics import MetricsSubscriber

__all__ = ["STOP_TIMEOUT_S", "cancel_and_wait"]

STOP_TIMEOUT_S = 60.0  # a cancelled run stops its processes within a few seconds


def cancel_and_wait(manifest: Manifest, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Ask the run `manifest` describes to cancel itself; return once its supervisor is gone.

    Raises `RunStateError` if the run cannot be reached (no metrics socket) or its
    supervisor is still there after `timeout_s`; the run is then left as it is.
    """
    supervisor = _supervisor(manifest)
    if supervisor is None:
        return
    try:
        with MetricsSubscriber(manifest.metrics_address, timeout_s=2.0) as subscriber:
            subscriber.request_cancel()
    except OSError as exc:
        if _supervisor(manifest) is None:
            return  # it ended by itself meanwhile
        raise RunStateError(
            f"could not ask run {manifest.run_id} to cancel (its metrics socket "
            f"{manifest.metrics_address or '(none)'}: {exc.strerror or exc}); stop it where it "
            "runs (Ctrl-C, or Cancel in the dashboard), then try again"
        ) from exc
    deadline = time.monotonic() + timeout_s
    while _supervisor(manifest) is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RunStateError(
                f"run {manifest.run_id} was asked to cancel but its supervisor (pid "
                f"{manifest.supervisor_pid}) was still running after {timeout_s:g} s; "
                "nothing was deleted (try again once it has stopped)"
            )
        with contextlib.suppress(psutil.Error):
            supervisor.wait(timeout=min(remaining, 0.2))


def _supervisor(manifest: Manifest) -> psutil.Process | None:
    """The run's supervisor process if it still runs (not a reused pid, not a zombie)."""
    process = supervisor_process(manifest.supervisor_pid, manifest.supervisor_started)
    try:
        if process is None or process.status() == psutil.STATUS_ZOMBIE:
            return None  # a zombie has ended; only its parent has not collected it yet
    except psutil.Error:
        return None
    return process
