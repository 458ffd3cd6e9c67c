"""Run a command under a memory limit: a new cgroup where this machine allows it (root),
else RLIMIT_AS on every process, and say which.

Used by the load tests and `perf/bench_memory.py`. A cgroup limits the whole tree together
(what a container does); RLIMIT_AS limits each process's address space separately, which is
cruder (address space is not memory) but needs no privileges.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Confinement", "confined", "run_confined"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Confinement:
    """How a limit is applied: `kind` is ``cgroup v2``, ``cgroup v1`` or ``RLIMIT_AS``."""

    kind: str
    limit_bytes: int
    preexec: Callable[[], None]
    directory: Path | None = None


@contextlib.contextmanager
def confined(limit_bytes: int, allow_cgroup: bool = True) -> Iterator[Confinement]:
    """A confinement for child processes; a cgroup made for it is removed on exit."""
    confinement = (_cgroup(limit_bytes) if allow_cgroup else None) or _rlimit(limit_bytes)
    try:
        yield confinement
    finally:
        if confinement.directory is not None:
            with contextlib.suppress(OSError):
                confinement.directory.rmdir()


def run_confined(
    confinement: Confinement, command: Sequence[str], timeout_s: float, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run `command` inside the confinement, capturing its output as text."""
    return subprocess.run(
        command,
        preexec_fn=confinement.preexec,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        **kwargs,
    )


def _cgroup(limit_bytes: int) -> Confinement | None:
    name = f"amdsim-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    v2 = CGROUP_ROOT / "cgroup.controllers"
    attempts = []
    if v2.is_file() and "memory" in v2.read_text().split():
        attempts.append(("cgroup v2", CGROUP_ROOT / name, "memory.max", "memory.swap.max"))
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").is_file():
        attempts.append(
            (
                "cgroup v1",
                CGROUP_ROOT / "memory" / name,
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
            )
        )
    for kind, directory, limit_file, swap_file in attempts:
        try:
            directory.mkdir()
        except OSError:
            continue
        try:
            (directory / limit_file).write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                swap = "0" if kind == "cgroup v2" else str(limit_bytes)
                (directory / swap_file).write_text(swap)
        except OSError:
            with contextlib.suppress(OSError):
                directory.rmdir()
            continue
        procs = str(directory / "cgroup.procs")

        def join(procs: str = procs) -> None:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))

        return Confinement(kind, limit_bytes, join, directory)
    return None


def _rlimit(limit_bytes: int) -> Confinement:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return Confinement("RLIMIT_AS", limit_bytes, limit)
