"""Names of the shared-memory segments amdsim creates, and removal of ones a crash left.

A segment is named ``amdsim-<tag>-<pid>-<random>``: the tag says which run it belongs to (its
run id) and the pid which process created and owns it. The owner unlinks its segment on every
exit it lives through, and Python's resource tracker unlinks it if the owner dies alone; but
``kill -9`` of the whole process group takes the tracker too, and the segment stays in
``/dev/shm`` until someone removes it. `remove_stale_segments` is that someone: resuming a run
and ``amdsim cleanup`` call it, each naming the runs it is responsible for (the run resumed;
the runs of its own runs root). There is deliberately no "any run": another runs root, another
checkout or a test session on the same machine owns its own leftovers.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SEGMENT_PREFIX", "remove_stale_segments", "segment_name", "stale_segments"]

SEGMENT_PREFIX = "amdsim-"
SHM_DIR = Path("/dev/shm")
_NAME = re.compile(rf"^{SEGMENT_PREFIX}(?P<tag>[0-9A-Za-z-]+)-(?P<pid>\d+)-[0-9a-f]{{8}}$")
_MAX_NAME = 250  # NAME_MAX is 255 on Linux


def segment_name(tag: str) -> str | None:
    """A fresh name for a segment owned by this process, or None to let Python choose.

    Only Linux has room for descriptive names (macOS allows 31 characters).
    """
    if not sys.platform.startswith("linux"):
        return None
    name = f"{SEGMENT_PREFIX}{_safe_tag(tag)}-{os.getpid()}-{secrets.token_hex(4)}"
    return name if len(name) <= _MAX_NAME else None


def stale_segments(run_ids: str | Iterable[str]) -> list[str]:
    """amdsim segments of the runs `run_ids` (one id, or several) whose owning process is gone."""
    tags = {_safe_tag(run_id) for run_id in ([run_ids] if isinstance(run_ids, str) else run_ids)}
    if not tags or not SHM_DIR.is_dir():
        return []
    stale = []
    for entry in SHM_DIR.iterdir():
        match = _NAME.match(entry.name)
        if match is None or match["tag"] not in tags:
            continue
        if not _alive(int(match["pid"])):
            stale.append(entry.name)
    return sorted(stale)


def remove_stale_segments(run_ids: str | Iterable[str]) -> list[str]:
    """Unlink the segments `stale_segments(run_ids)` lists; returns the names it removed."""
    removed = []
    for name in stale_segments(run_ids):
        with contextlib.suppress(FileNotFoundError):
            (SHM_DIR / name).unlink()
            removed.append(name)
    return removed


def _safe_tag(tag: str) -> str:
    """`tag` as it appears in a segment name."""
    return re.sub(r"[^0-9A-Za-z-]", "-", tag) or "run"


def _alive(pid: int) -> bool:
    import psutil  # noqa: PLC0415 - only cleanup needs it; workers import this module

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
