"""Whether a run's supervisor is still alive: its pid, checked against its start time.

A run marked ``running`` whose supervisor is gone (its pid is not alive, or is now another
process) is reported as ``interrupted``: that is how a crash or a kill -9 shows up. The start
time guards against a reused pid.
Does not cover: stopping a supervisor (`engine.run_control`).
"""

from __future__ import annotations

import msgspec
import psutil

from engine.registry_entry import RegistryEntry

__all__ = ["live_entry", "live_status", "supervisor_alive", "supervisor_process"]


def supervisor_process(pid: int, started: float) -> psutil.Process | None:
    """The process `pid` if it runs and is the one that started at `started` (not a reused
    pid); else None."""
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        return process if abs(process.create_time() - started) < 1.0 else None
    except psutil.Error:
        return None


def supervisor_alive(pid: int, started: float) -> bool:
    """True if `pid` runs and is the process that started at `started` (not a reused pid)."""
    return supervisor_process(pid, started) is not None


def live_status(status: str, pid: int, started: float) -> str:
    """`status` as it stands now: ``running`` becomes ``interrupted`` if the supervisor
    (`pid`, started at `started`) is gone."""
    if status == "running" and not supervisor_alive(pid, started):
        return "interrupted"
    return status


def live_entry(entry: RegistryEntry) -> RegistryEntry:
    """`entry` with its status as it stands now: ``running`` becomes ``interrupted`` if its
    supervisor is gone."""
    status = live_status(entry.status, entry.supervisor_pid, entry.supervisor_started)
    if status != entry.status:
        return msgspec.structs.replace(entry, status=status)
    return entry
