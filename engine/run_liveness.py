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

__all__ = ["live_entry", "supervisor_alive"]


def supervisor_alive(pid: int, started: float) -> bool:
    """True if `pid` runs and is the process that started at `started` (not a reused pid)."""
    if pid <= 0:
        return False
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.Error:
        return False


def live_entry(entry: RegistryEntry) -> RegistryEntry:
    """`entry` with its status as it stands now: ``running`` becomes ``interrupted`` if its
    supervisor is gone."""
    if entry.status == "running" and not supervisor_alive(
        entry.supervisor_pid, entry.supervisor_started
    ):
        return msgspec.structs.replace(entry, status="interrupted")
    return entry
