"""Fixtures shared by every test: leak checks and protocol builders."""

from __future__ import annotations

import os

import psutil
import pytest

SHM_DIR = "/dev/shm"


def _shm_segments() -> set[str]:
    if not os.path.isdir(SHM_DIR):
        return set()
    return {name for name in os.listdir(SHM_DIR) if not name.startswith("sem.")}


# Processes that live for the whole test session by design: multiprocessing's resource
# tracker, and the browser of the dashboard tests (Playwright's driver and Chromium, whose
# renderer processes come and go with pages).
_SESSION_PROCESSES = ("resource_tracker", "chromium", "chrome", "playwright")


def _is_live_non_tracker(process: psutil.Process) -> bool:
    """Alive, and not one of the session-long processes above."""
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = " ".join(process.cmdline()) or process.name()
        return not any(name in command for name in _SESSION_PROCESSES)
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def no_leaked_processes_or_segments():
    """Fail a test that leaves a child process or a shared-memory segment behind."""
    me = psutil.Process()
    children_before = {p.pid for p in me.children(recursive=True)}
    segments_before = _shm_segments()
    yield
    leaked = [
        p
        for p in me.children(recursive=True)
        if p.pid not in children_before and _is_live_non_tracker(p)
    ]
    new_segments = _shm_segments() - segments_before
    for process in leaked:
        process.kill()
    assert not leaked, f"test left child processes running: {[p.pid for p in leaked]}"
    assert not new_segments, f"test left shared-memory segments: {sorted(new_segments)}"
