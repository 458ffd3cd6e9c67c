"""Cleaning a runs root: deleting marked runs, finding leftovers, adopting unregistered runs.

Everything here works on the registry's runs inside one transaction (`Registry._change`), so
it changes the dict it is given and the registry writes it back.
- A run marked for cleanup (by hand or by the cap, `engine.registry_cap`) is deleted under
  its run lock, never while a supervisor holds that lock, never through a symbolic link. A
  small run's entry goes, never its --out folder (outside the root, the user's own).
- A directory named like a run that no entry owns is judged by `engine.run_survey`: a
  readable run (killed before it registered) is adopted; an unreadable one is reported,
  never removed; an empty leftover is removed only on request, and not while it may still
  be starting (`ORPHAN_GRACE_S`).
  Each such directory is surveyed once (`survey_unlisted`): adopting, judging leftovers and
  listing the unreadable reuse the surveys already made.
Does not cover: the registry file and its lock (`engine.registry_store`).
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable
from pathlib import Path

import msgspec

from engine.errors import RunStateError
from engine.registry_cap import apply_cap
from engine.registry_entry import RegistryEntry, entry_from_manifest
from engine.run_dir import (
    RUN_ID_PATTERN,
    RunLock,
    RunPaths,
    is_real_directory,
    remove_run_directory,
    validate_run_id,
)
from engine.run_liveness import live_entry
from engine.run_survey import DirectorySurvey, UnreadableRun, survey_directory

__all__ = [
    "ORPHAN_GRACE_S",
    "adopt",
    "clean",
    "remove_marked",
    "survey_unlisted",
    "unlisted",
    "unreadable",
]

ORPHAN_GRACE_S = 60.0  # a run directory this new may be starting up: not an orphan yet


def clean(
    root: Path,
    runs: dict[str, RegistryEntry],
    max_runs: int | None,
    dry_run: bool,
    orphans: bool,
) -> dict[str, list[str]]:
    """Adopt, apply the cap, remove marked runs, mark vanished ones ``missing``, judge leftovers.

    The report is `Registry.cleanup`'s (see there); with `dry_run`, nothing on disk or in
    `runs` changes except adopted entries and cap marks.
    """
    report: dict[str, list[str]] = {
        "removed": [],
        "orphans": [],
        "kept_orphans": [],
        "missing": [],
        "unreadable": [],
    }
    surveyed = adopt(root, runs)
    apply_cap(runs, max_runs)
    report["removed"] = remove_marked(root, runs, dry_run)
    for run_id, entry in list(runs.items()):
        if run_id in report["removed"]:
            continue
        if _run_dir(root, run_id).is_symlink():
            report["unreadable"].append(f"{run_id} (a symbolic link; left alone)")
        elif not _present(root, entry) and entry.status != "missing":
            report["missing"].append(run_id)
            if not dry_run:
                runs[run_id] = msgspec.structs.replace(entry, status="missing")
    for survey in survey_unlisted(root, runs, surveyed):
        child = survey.path
        if survey.problem:
            report["unreadable"].append(f"{child.name} ({survey.problem})")
        elif survey.leftover and not _being_started(child):
            report["orphans" if orphans else "kept_orphans"].append(child.name)
            if orphans and not dry_run:
                remove_run_directory(child)
    return report


def remove_marked(root: Path, runs: dict[str, RegistryEntry], dry_run: bool) -> list[str]:
    """Delete the marked runs no supervisor holds and drop their entries; the ids removed."""
    removed = []
    for run_id, entry in list(runs.items()):
        if not entry.marked_for_cleanup or live_entry(entry).status == "running":
            continue
        if _run_dir(root, run_id).is_symlink():  # never followed: cleanup reports it
            continue
        if entry.storage == "parquet" and not dry_run:
            if not _remove_unless_held(_run_dir(root, run_id)):
                continue
        elif entry.storage == "parquet" and _held(_run_dir(root, run_id)):
            continue
        removed.append(run_id)
        if not dry_run:
            del runs[run_id]
    return removed


def unlisted(root: Path, owned: Container[str]) -> list[Path]:
    """Run directories under `root` whose names are not in `owned`."""
    return [
        child
        for child in sorted(root.iterdir())
        if is_real_directory(child) and RUN_ID_PATTERN.match(child.name) and child.name not in owned
    ]


def survey_unlisted(
    root: Path, owned: Container[str], surveyed: Iterable[DirectorySurvey] = ()
) -> list[DirectorySurvey]:
    """The survey of each name under `root` like a run id (directory, link or file) not in
    `owned`, by name; those in `surveyed` (an earlier call's) are reused, not surveyed again."""
    known = {survey.path.name: survey for survey in surveyed}
    return [
        known[child.name] if child.name in known else survey_directory(child)
        for child in sorted(root.iterdir())
        if RUN_ID_PATTERN.match(child.name) and child.name not in owned
    ]


def adopt(
    root: Path, runs: dict[str, RegistryEntry], surveyed: Iterable[DirectorySurvey] = ()
) -> list[DirectorySurvey]:
    """Register unlisted directories that hold a readable manifest: runs killed between
    writing their manifest and registering (the registry is an index of the manifests).

    Returns the surveys it made (reusing `surveyed`), for `unreadable` and `clean` to reuse.
    """
    surveys = survey_unlisted(root, runs, surveyed)
    for survey in surveys:
        # None unless its own and readable
        if is_real_directory(survey.path) and survey.manifest is not None:
            runs[survey.path.name] = entry_from_manifest(survey.manifest, "", time.time())
    return surveys


def unreadable(
    root: Path, owned: Container[str], surveyed: Iterable[DirectorySurvey] = ()
) -> list[UnreadableRun]:
    """Directories (and links) named like runs, not in `owned`, that amdsim cannot read."""
    return [
        UnreadableRun(run_id=survey.path.name, reason=survey.problem)
        for survey in survey_unlisted(root, owned, surveyed)
        if survey.problem
    ]


def _run_dir(root: Path, run_id: str) -> Path:
    return root / validate_run_id(run_id)


def _present(root: Path, entry: RegistryEntry) -> bool:
    """Whether what the entry lists is still there (an unsaved small run always is)."""
    if entry.storage == "memory":
        return not entry.location or Path(entry.location).is_dir()
    return _run_dir(root, entry.run_id).is_dir()


def _remove_unless_held(run_dir: Path) -> bool:
    """Delete a run's directory under its run lock; False if a supervisor holds it."""
    if not run_dir.is_dir():
        return True
    try:
        lock = RunLock(RunPaths(run_dir))
    except RunStateError:
        return False
    try:
        remove_run_directory(run_dir)
    finally:
        lock.release()
    return True


def _held(run_dir: Path) -> bool:
    """True if a supervisor holds the run's lock (its directory is in use)."""
    if not RunPaths(run_dir).lock.is_file():
        return False
    try:
        RunLock(RunPaths(run_dir)).release()
    except RunStateError:
        return True
    except OSError:
        return False
    return False


def _being_started(run_dir: Path) -> bool:
    """True for a directory a supervisor holds or has just created (not yet registered)."""
    try:
        if time.time() - run_dir.stat().st_mtime < ORPHAN_GRACE_S:
            return True
    except OSError:
        return False
    return _held(run_dir)
