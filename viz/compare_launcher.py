"""Start `amdsim compare` from the dashboard, follow it through its files, cancel it.

A comparison runs as the CLI runs it (`python -m engine.cli compare ... --out DIR`), in its
own process group, so the dashboard gets the CLI's checkpoints, resume and status for free and
its own process stays light. The request is checked here first (protocols time-based, numbers
in range, a new directory) so bad input is one line on the page and starts nothing. Like runs
started from the dashboard, a comparison carries on if the page or the server closes; Cancel
sends Ctrl-C to its process group (the comparison then shows "interrupted" and resumes with
`amdsim compare --resume DIR`), and after 5 s kills what is left.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.compare.runner import write_status
from engine.compare.setup import CompareRequest
from engine.errors import AmdsimError, ParameterError
from engine.model.parameters import Recruitment, RunParameters, validate_parameters
from engine.model.protocol_loader import bundled_protocol_names
from engine.model.v2.schema import TimeBasedProtocol
from viz.protocol_cache import cached_protocol

__all__ = ["ComparisonLauncher", "time_based_protocols"]

CANCEL_GRACE_S = 5.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def time_based_protocols(protocols_dir: Path | None = None) -> list[str]:
    """Protocols a comparison can take: bundled and in `protocols_dir`, time-based only."""
    candidates = list(bundled_protocol_names())
    if protocols_dir is not None and Path(protocols_dir).is_dir():
        candidates += sorted(str(p) for p in Path(protocols_dir).glob("*.y*ml"))
    found = []
    for reference in candidates:
        try:
            if isinstance(cached_protocol(reference), TimeBasedProtocol):
                found.append(reference)
        except AmdsimError:
            continue  # a broken file in the folder is not offered
    return found


class ComparisonLauncher:
    """The comparisons this server started: start, ask whether running, cancel."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(
        self,
        protocols: list[str],
        patients: int,
        years: float,
        seed: int,
        name: str = "",
    ) -> str:
        """Check the request and start the comparison; its directory name. Raises AmdsimError."""
        if len(protocols) < 2:
            raise ParameterError("choose two or more protocols to compare")
        for reference in protocols:
            if not isinstance(cached_protocol(reference), TimeBasedProtocol):
                raise ParameterError(f"{reference} is visit-based; comparisons need time-based")
        CompareRequest.build(  # the CLI's own checks of the numbers, before anything starts
            protocols=protocols,
            patients=patients,
            years=years,
            seed=seed,
            recruitment=Recruitment(),
            costs=None,
            utilities=None,
            drugs={},
            cost_rate=0.035,
            outcome_rate=0.035,
            thresholds=[20_000.0],
            session_capacity=20.0,
        )
        validate_parameters(RunParameters(n_patients=patients, years=years, seed=seed))
        name = name.strip() or datetime.datetime.now().strftime("compare-%Y%m%d-%H%M%S")
        if not _NAME.match(name):
            raise ParameterError(
                f"name {name!r}: use letters, digits, '-', '_' or '.' (at most 80 characters)"
            )
        directory = self.root / name
        if directory.exists():
            raise ParameterError(f"a comparison named {name!r} exists already; choose another")
        self.root.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "engine.cli", "compare", *protocols,
                   "--patients", str(patients), "--years", repr(float(years)),
                   "--seed", str(seed), "--out", str(directory)]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the server's terminal does not reach it
        )
        with self._lock:
            self._processes[name] = process
        return name

    def names(self) -> list[str]:
        """The comparisons this server started that it has not yet seen exit."""
        with self._lock:
            return list(self._processes)

    def process_id(self, name: str) -> int:
        """The process id of `name`'s CLI, which leads its own session and process group."""
        with self._lock:
            return self._processes[name].pid

    def running(self, name: str) -> bool:
        """Whether this server started `name` and it has not exited (reaps it if it has)."""
        with self._lock:
            process = self._processes.get(name)
            if process is None:
                return False
            if process.poll() is None:
                return True
            del self._processes[name]
            return False

    def cancel(self, name: str) -> bool:
        """Interrupt `name` (Ctrl-C to its group, then kill after 5 s); False if not running."""
        with self._lock:
            process = self._processes.get(name)
        if process is None or process.poll() is not None:
            return False
        _signal_group(process.pid, signal.SIGINT)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            write_status(self.root / name, "interrupted")
        self.running(name)
        return True


def _signal_group(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just exited by itself
        os.killpg(pid, number)
