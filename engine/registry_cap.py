"""The cap on runs: which finished runs to mark for cleanup once there are more than `max_runs`.

The cap (``max_runs``, stored in the registry file) is applied whenever the registry changes.
Beyond it, the oldest finished runs (by creation) are marked; running and interrupted runs are
never marked, and marked runs do not count. Marking only: nothing is deleted here.
Does not cover: deleting marked runs (`engine.registry_cleanup`).
"""

from __future__ import annotations

import msgspec

from engine.registry_entry import FINISHED, RegistryEntry

__all__ = ["apply_cap", "newly_marked"]


def apply_cap(runs: dict[str, RegistryEntry], max_runs: int | None) -> None:
    """Mark the oldest finished runs until at most `max_runs` remain unmarked (None: no cap)."""
    if max_runs is None:
        return
    kept = [e for e in runs.values() if not e.marked_for_cleanup]
    excess = len(kept) - max_runs
    if excess <= 0:
        return
    finished = sorted((e for e in kept if e.status in FINISHED), key=lambda e: e.created)
    for entry in finished[:excess]:
        runs[entry.run_id] = msgspec.structs.replace(entry, marked_for_cleanup=True)


def newly_marked(before: dict[str, RegistryEntry], after: dict[str, RegistryEntry]) -> list[str]:
    """The ids marked for cleanup in `after` that were not marked in `before`, sorted."""
    return sorted(
        run_id
        for run_id, e in after.items()
        if e.marked_for_cleanup and not (run_id in before and before[run_id].marked_for_cleanup)
    )
