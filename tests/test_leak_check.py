"""The tests' own leak check (tests/conftest.py) blames only this test session's segments.

Issue 10, case 20: it compared all of /dev/shm, so any other amdsim process on the machine
(a second checkout, a user's run) failed unrelated tests.
"""

from __future__ import annotations

import os
from multiprocessing import shared_memory

import psutil

from ipc.segments import SHM_DIR, segment_name
from tests.conftest import _shm_segments


def _a_pid_outside_this_session() -> int:
    """A live process that is neither this one nor a descendant (init, or our parent)."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    for pid in (1, os.getppid()):
        if pid not in mine and psutil.pid_exists(pid):
            return pid
    raise AssertionError("no process outside this session to pretend to be")


def test_leak_check_ignores_segments_of_other_processes_on_the_host():
    foreign = SHM_DIR / f"amdsim-another-checkout-{_a_pid_outside_this_session()}-0badc0de"
    foreign.write_bytes(b"")
    try:
        assert foreign.name not in _shm_segments()
    finally:
        foreign.unlink()


def test_leak_check_sees_segments_this_session_creates():
    segment = shared_memory.SharedMemory(name=segment_name("leak-check"), create=True, size=16)
    try:
        assert segment.name in _shm_segments()
    finally:
        segment.close()
        segment.unlink()
    assert segment.name not in _shm_segments()
