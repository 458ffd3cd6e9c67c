"""Fixtures shared by every test: leak checks and protocol builders."""

from __future__ import annotations

import contextlib
import os
import re
import threading

import psutil
import pytest

SHM_DIR = "/dev/shm"
# amdsim names its segments amdsim-<run tag>-<owner pid>-<8 hex digits> (ipc/segments.py).
_SEGMENT_OWNER = re.compile(r"^amdsim-.*-(?P<pid>\d+)-[0-9a-f]{8}$")


class _DescendantTracker:
    """Every process that has been a descendant of this test session, sampled every 20 ms.

    The leak check below looks only at segments that this session's processes created: other
    amdsim processes on the machine (a second checkout, a user's run) come and go with their
    own segments, which are none of these tests' business.
    """

    def __init__(self) -> None:
        self._me = psutil.Process()
        self.pids: set[int] = {self._me.pid}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="descendants", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.refresh()

    def refresh(self) -> None:
        """Add the descendants alive now."""
        # A child that vanishes mid-walk is seen by an earlier or the next sample.
        with contextlib.suppress(psutil.Error):
            self.pids.update(child.pid for child in self._me.children(recursive=True))


_tracker: _DescendantTracker | None = None


def _session_tracker() -> _DescendantTracker:
    global _tracker  # noqa: PLW0603 - one sampler per test process
    if _tracker is None:
        _tracker = _DescendantTracker()
    return _tracker


def _shm_segments() -> set[str]:
    """amdsim segments in /dev/shm owned by a process of this test session."""
    if not os.path.isdir(SHM_DIR):
        return set()
    tracker = _session_tracker()
    tracker.refresh()
    ours = set()
    for name in os.listdir(SHM_DIR):
        match = _SEGMENT_OWNER.match(name)
        if match is not None and int(match["pid"]) in tracker.pids:
            ours.add(name)
    return ours


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
