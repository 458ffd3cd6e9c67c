"""Shared-memory segment names carry run and owner; a crash's leftovers are found and removed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ipc.channel import Channel
from ipc.segments import SHM_DIR, remove_stale_segments, segment_name, stale_segments

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux names only")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_channel_segment_is_named_after_its_run_and_owner():
    channel = Channel(slot_count=2, slot_bytes=4096, tag="20261129-120000-abcd")
    try:
        name = channel.spec.segment
        assert name.startswith(f"amdsim-20261129-120000-abcd-{os.getpid()}-")
        assert (SHM_DIR / name).exists()
        assert name not in stale_segments("20261129-120000-abcd"), "a live owner's is not stale"
    finally:
        channel.close()
    assert not (SHM_DIR / name).exists()


def test_only_segments_of_dead_owners_are_removed_and_only_for_the_run_asked(tmp_path):
    dead = dead_pid()
    ours = SHM_DIR / f"amdsim-run-a-{dead}-0000abcd"
    other_run = SHM_DIR / f"amdsim-run-b-{dead}-0000abcd"
    alive = SHM_DIR / f"amdsim-run-a-{os.getpid()}-0000abcd"
    foreign = SHM_DIR / f"psm_{dead}"
    created = [ours, other_run, alive, foreign]
    for path in created:
        path.write_bytes(bytes(16))
    try:
        assert stale_segments("run-a") == [ours.name]
        assert remove_stale_segments("run-a") == [ours.name]
        assert not ours.exists() and other_run.exists() and alive.exists() and foreign.exists()
        removed = remove_stale_segments(["run-a", "run-b"])
        assert removed == [other_run.name]
        assert alive.exists() and foreign.exists() and not other_run.exists()
    finally:
        for path in created:
            path.unlink(missing_ok=True)


def test_tags_are_made_safe_for_a_segment_name():
    name = segment_name("my run/../x")
    assert name is not None and "/" not in name and name.startswith("amdsim-my-run----x-")


def test_cleanup_removes_only_segments_of_the_runs_it_names():
    """Case 15: `remove_stale_segments(None)` removed every dead amdsim segment on the
    machine; now the caller names its runs, and no runs means nothing removed."""
    dead = dead_pid()
    mine = SHM_DIR / f"amdsim-20261202-120000-{os.getpid() % 0xFFFF:04x}-{dead}-0000abcd"
    other = SHM_DIR / f"amdsim-20261202-120001-{os.getpid() % 0xFFFF:04x}-{dead}-0000abcd"
    try:
        for path in (mine, other):
            path.write_bytes(bytes(16))
        assert remove_stale_segments([]) == [] and mine.exists() and other.exists()
        tag = mine.name.split("-", 1)[1].rsplit("-", 2)[0]  # the run id in the name
        assert remove_stale_segments({tag}) == [mine.name]
        assert not mine.exists() and other.exists()
        with pytest.raises(TypeError):
            remove_stale_segments(None)  # type: ignore[arg-type]
    finally:
        mine.unlink(missing_ok=True)
        other.unlink(missing_ok=True)


def test_closing_a_segment_with_live_views_is_quiet_now_and_at_exit():
    """A writer that fails holding numpy views of a slot still closes its mapping without a
    BufferError, now or later from SharedMemory.__del__ ("Exception ignored" on stderr)."""
    script = textwrap.dedent(
        """
        from multiprocessing import shared_memory
        import numpy as np
        from ipc._channel_base import close_segment
        from ipc.segments import segment_name

        segment = shared_memory.SharedMemory(name=segment_name("views"), create=True, size=64)
        view = np.frombuffer(segment.buf[:16], dtype=np.int64)
        view[:] = 7
        close_segment(segment)
        segment.unlink()
        assert int(view.sum()) == 14  # the views keep the mapping alive
        del segment
        import gc; gc.collect()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert done.stderr == "", done.stderr
