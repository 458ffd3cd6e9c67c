"""Say plainly that a run a session shows was deleted or restarted elsewhere, never with a path.

One session may delete or restart a run (Runs page, or the command line) that another
session has open on its Results page or follows on its Run page. Reading the vanished files
would then fail with the file system's words (``[Errno 2] ... /runs/<id>/part-...``); these
checks let the pages say what happened instead. A run is judged by its directory's
manifest, which `Registry.delete` removes with the directory and a restart rewrites.
Does not cover: in-memory results a session holds (they stay valid whatever the registry
says), or deciding whether to delete (`viz.runs_page` asks for confirmation).
"""

from __future__ import annotations

from pathlib import Path

from engine.manifest import read_manifest
from engine.results.base import SimulationResults
from engine.run_dir import RunPaths

__all__ = ["deleted_text", "gone_reason", "run_deleted"]


def deleted_text(run_id: str) -> str:
    """What a page says about a run that was deleted while it showed it."""
    return f"run {run_id} was deleted: its results are no longer available"


def run_deleted(run_dir: Path) -> bool:
    """True if the run directory `run_dir` is gone (or no longer holds a manifest)."""
    return not RunPaths(Path(run_dir)).manifest.exists()


def gone_reason(run_id: str, results: SimulationResults) -> str | None:
    """Why the open `results` of `run_id` can no longer be read, or None if they can."""
    paths = getattr(results, "paths", None)
    held = getattr(results, "manifest", None)
    if results.storage != "parquet" or paths is None or held is None:
        return None  # rows held in memory stay readable whatever happens on disk
    if run_deleted(paths.root):
        return deleted_text(run_id)
    try:
        now = read_manifest(paths.manifest)
    except Exception:  # being rewritten at this moment: judge again at the next refresh
        return None
    if now.supervisor_started != held.supervisor_started and now.status == "running":
        return (
            f"run {run_id} was restarted or resumed: the results shown are out of date; "
            "open it again when it has finished"
        )
    return None
