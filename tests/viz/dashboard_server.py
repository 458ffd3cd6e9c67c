"""Start an `amdsim dashboard` process for browser tests and the soak script, and stop it
together with every run it started.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright through `executable_path`;
`chromium_path()` is None where there is none, and the browser tests skip saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.manifest import read_manifest

__all__ = [
    "CHROMIUM_ARGS",
    "DashboardServer",
    "chromium_path",
    "running_dashboard",
    "wait_for_run_processes",
]

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Debian's Chromium, or whatever `chromium` is on PATH; None if there is none."""
    for candidate in (
        os.environ.get("AMDSIM_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@dataclass
class DashboardServer:
    process: subprocess.Popen[bytes]
    url: str
    runs_root: Path
    log: Path

    def running_runs(self) -> list[Path]:
        found = []
        for manifest in self.runs_root.glob("*/manifest.json"):
            with contextlib.suppress(Exception):
                if read_manifest(manifest).status == "running":
                    found.append(manifest.parent)
        return found


def wait_for_run_processes(server: DashboardServer, timeout_s: float = 60.0) -> None:
    """Wait until every process the dashboard started has exited (a run's manifest says
    `completed` a moment before its process is gone)."""
    import psutil

    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.Error:
        return
    psutil.wait_procs(children, timeout=timeout_s)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_dashboard(
    runs_root: Path,
    log: Path,
    timeout_s: float = 60.0,
    arguments: Callable[[int], list[str]] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[DashboardServer]:
    """A dashboard serving `runs_root`; on exit every run it started is cancelled and waited
    for, then the dashboard is stopped (SIGINT, then SIGKILL).

    `arguments(port)` adds command-line arguments (e.g. `--address 0.0.0.0`); whatever the
    address, the server is only ever reached through 127.0.0.1.
    """
    port = _free_port()
    amdsim = str(Path(sys.executable).with_name("amdsim"))
    command = [amdsim, "dashboard", "--port", str(port), "--runs-dir", str(runs_root)]
    command += arguments(port) if arguments is not None else []
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env is not None else None,
        )
    url = f"http://127.0.0.1:{port}/"
    server = DashboardServer(process, url, runs_root, log)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard exited: {log.read_text()[-2000:]}")
            # Listening is enough: a page request builds a whole session, so polling the page
            # itself would pile up abandoned sessions on a slow machine.
            if "amdsim dashboard on" in log.read_text(errors="replace"):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        _stop_runs(server)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stop_runs(server: DashboardServer, timeout_s: float = 30.0) -> None:
    from viz.launcher import request_cancel

    for run_dir in server.running_runs():
        request_cancel(run_dir)
    deadline = time.monotonic() + timeout_s
    while server.running_runs() and time.monotonic() < deadline:
        time.sleep(0.2)
    # Runs the dashboard launched are its children: wait until they have exited.
    with contextlib.suppress(Exception):
        import psutil

        children = psutil.Process(server.process.pid).children(recursive=True)
        psutil.wait_procs(children, timeout=max(1.0, deadline - time.monotonic()))
