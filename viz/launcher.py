"""Start, resume, restart and cancel streaming runs from the dashboard.

A run is its own `amdsim` process in its own session (`start_new_session`): closing the
browser, reloading, or stopping the dashboard with Ctrl-C never reaches it. Its output goes
to ``<runs root>/.logs/<run id>.log``. A reaper thread waits for each process so none is
left a zombie. Each process started gets a new watch in the server's `LiveRuns`, so pages
follow the new process of a resumed or restarted run, not the end of the previous one.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.manifest import read_manifest
from engine.model.parameters import Recruitment
from engine.run_dir import RunPaths, new_run_id
from ipc.metrics import MetricsSubscriber
from viz.live import LiveRuns
from viz.recruitment_form import recruitment_arguments

__all__ = ["Launched", "Launcher", "request_cancel"]


@dataclass
class Launched:
    """A run process this dashboard started."""

    run_id: str
    run_dir: Path
    process: subprocess.Popen[bytes]
    log: Path


class Launcher:
    """Starts `amdsim` processes for runs under `runs_root`, remembers them and, given
    `live`, starts a fresh watch of each."""

    def __init__(self, runs_root: Path, live: LiveRuns | None = None) -> None:
        self.runs_root = Path(runs_root)
        self.live = live
        self.launched: dict[str, Launched] = {}
        self._lock = threading.Lock()

    def start(
        self,
        protocol: Path,
        patients: int,
        years: float,
        seed: int,
        workers: int,
        compression: str,
        recruitment: Recruitment | None = None,
        name: str = "",
        notes: str = "",
    ) -> Launched:
        """A new run of `protocol`; returns at once (the run starts in its own process)."""
        run_id = new_run_id()
        run_dir = self.runs_root / run_id
        command = ["run", "--protocol", str(protocol), "--patients", str(patients)]
        command += ["--years", repr(years), "--seed", str(seed), "--workers", str(workers)]
        command += ["--compression", compression, "--out", str(run_dir), "--json"]
        if recruitment is not None:
            command += recruitment_arguments(recruitment)
        if name:
            command += ["--name", name]
        if notes:
            command += ["--notes", notes]
        return self._spawn(run_id, run_dir, command)

    def resume(self, run_id: str) -> Launched:
        """Carry on an interrupted or cancelled run."""
        return self._spawn(
            run_id,
            self.runs_root / run_id,
            ["resume", run_id, "--runs-dir", str(self.runs_root), "--json"],
        )

    def restart(self, run_id: str) -> Launched:
        """Discard a run's files and run it again with its own protocol and parameters."""
        return self._spawn(
            run_id,
            self.runs_root / run_id,
            ["run", "--restart", run_id, "--runs-dir", str(self.runs_root), "--json"],
        )

    def _spawn(self, run_id: str, run_dir: Path, arguments: list[str]) -> Launched:
        logs = self.runs_root / ".logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{run_id}.log"
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", *arguments],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        launched = Launched(run_id, run_dir, process, log)
        with self._lock:
            self.launched[run_id] = launched
        if self.live is not None:  # a new process is a new watch, whatever the old one saw
            self.live.follow_process(run_dir, process)
        # Reap the process when it ends, so it is never left a zombie.
        threading.Thread(target=process.wait, daemon=True, name=f"reap-{run_id}").start()
        return launched


def request_cancel(run_dir: Path) -> bool:
    """Ask a running run to cancel itself over its metrics socket; False if it is not running."""
    try:
        address = read_manifest(RunPaths(Path(run_dir)).manifest).metrics_address
        with MetricsSubscriber(address, timeout_s=2.0) as subscriber:
            subscriber.request_cancel()
    except Exception:
        return False
    return True
