"""The run registry: one JSON file under the runs root listing every run, safe across processes.

A `Registry` object keeps the entries it last read; `refresh()` picks up other processes'
changes. Every change is one transaction (`Registry._change`): lock, read the latest file,
change the runs, apply the cap, write atomically, unlock.

A run marked ``running`` whose supervisor is gone is reported as ``interrupted``
(`engine.run_liveness`). Small runs that stayed in memory are listed too (``storage:
memory``, see `engine.small_runs`); they own no run directory. A cap on the number of runs
(``max_runs``, `engine.registry_cap`) marks the oldest finished runs for cleanup whenever the
registry changes; `remove_marked` (``amdsim cleanup``, the dashboard's background task)
deletes them, never a run whose supervisor holds its lock (`engine.registry_cleanup`).

This module is the registry's public face; its parts live in
- `engine.registry_entry`: `RegistryEntry`, its statuses, building one from a manifest;
- `engine.registry_store`: the file's schema, reading it, the lock;
- `engine.registry_cap`: which runs the cap marks;
- `engine.registry_cleanup`: deleting marked runs, adopting and judging unlisted directories;
- `engine.run_liveness`: whether a supervisor is alive.
Does not cover: what is inside a run directory (`engine.manifest`), resuming (`engine.resume`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine.errors import AmdsimError, FileSystemError, RunNotFoundError
from engine.manifest import Manifest
from engine.registry_cap import apply_cap, newly_marked
from engine.registry_cleanup import (
    ORPHAN_GRACE_S,
    adopt,
    clean,
    remove_marked,
    unlisted,
    unreadable,
)
from engine.registry_entry import FINISHED, RegistryEntry, Status, entry_from_manifest
from engine.registry_store import (
    LOCK_FILE,
    LOCK_TIMEOUT_S,
    REGISTRY_FILE,
    REGISTRY_FORMAT_VERSION,
    RegistryFile,
    RegistryLockedError,
    read_registry,
    write_registry,
)
from engine.registry_store import locked as _locked  # its name here before the split
from engine.run_dir import remove_run_directory, validate_run_id
from engine.run_liveness import live_entry, supervisor_alive
from engine.run_survey import DirectorySurvey, UnreadableRun

__all__ = [
    "FINISHED",
    "LOCK_FILE",
    "LOCK_TIMEOUT_S",
    "ORPHAN_GRACE_S",
    "REGISTRY_FILE",
    "REGISTRY_FORMAT_VERSION",
    "Registry",
    "RegistryEntry",
    "RegistryLockedError",
    "Status",
    "supervisor_alive",
]

_UNCHANGED = object()  # `Registry._change`: keep the stored cap


class Registry:
    """The runs under one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileSystemError.from_os_error(exc, "cannot create the runs root") from exc
        self._entries: dict[str, RegistryEntry] = {}
        self._max_runs: int | None = None
        self._surveyed: list[DirectorySurvey] = []  # list()'s surveys, for unreadable() once
        self.refresh()

    @property
    def path(self) -> Path:
        """The registry file."""
        return self.root / REGISTRY_FILE

    # -- reading --------------------------------------------------------------------------

    @property
    def max_runs(self) -> int | None:
        """The cap on runs kept (as last read); None: no cap."""
        return self._max_runs

    def refresh(self) -> None:
        """Re-read the file, seeing every other process's changes."""
        current = read_registry(self.path)
        self._entries, self._max_runs = current.runs, current.max_runs

    def get(self, run_id: str) -> RegistryEntry:
        """One run (as last read), with its status as it stands now."""
        entry = self._entries.get(run_id)
        if entry is None:
            self.refresh()
            entry = self._entries.get(run_id)
        if entry is None:
            raise RunNotFoundError(f"no run {run_id!r} under {self.root} (see 'amdsim list')")
        return live_entry(entry)

    def list(self) -> list[RegistryEntry]:
        """Every run, newest first, statuses as they stand now."""
        self.refresh()
        entries = self._entries
        self._surveyed = []
        if any((child / "manifest.json").is_file() for child in unlisted(self.root, entries)):
            try:
                with self._change() as runs:
                    self._surveyed = adopt(self.root, runs)
                entries = self._entries
            except FileSystemError:  # a read-only root: list them without recording them
                entries = dict(self._entries)
                self._surveyed = adopt(self.root, entries, self._surveyed)
        return sorted(
            (live_entry(e) for e in entries.values()), key=lambda e: e.created, reverse=True
        )

    def search(
        self,
        text: str = "",
        status: str | None = None,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        min_bytes: int | None = None,
        max_bytes: int | None = None,
    ) -> list[RegistryEntry]:
        """Runs whose id, name or protocol contains `text` (any case) and that match the rest."""
        needle = text.lower()
        found = []
        for entry in self.list():
            haystack = f"{entry.run_id} {entry.name} {entry.protocol}".lower()
            if needle and needle not in haystack:
                continue
            if status is not None and entry.status != status:
                continue
            if since is not None and entry.created < since:
                continue
            if until is not None and entry.created > until:
                continue
            if min_bytes is not None and entry.bytes_on_disk < min_bytes:
                continue
            if max_bytes is not None and entry.bytes_on_disk > max_bytes:
                continue
            found.append(entry)
        return found

    def unreadable(self) -> list[UnreadableRun]:
        """Directories named like runs that no entry owns and amdsim cannot read, with why.

        Links named like runs are among them. They are listed, never removed (see
        `engine.run_survey`); call `list()` first so that readable ones are adopted (the
        directories it surveyed then are not surveyed again).
        """
        surveyed, self._surveyed = self._surveyed, []
        return unreadable(self.root, self._entries, surveyed)

    def run_dir(self, run_id: str) -> Path:
        """Where run `run_id` lives (the id is validated, so this is never outside the root)."""
        return self.root / validate_run_id(run_id)

    # -- changing -------------------------------------------------------------------------

    def register(self, manifest: Manifest, name: str = "") -> RegistryEntry:
        """Add a run (or replace its entry) from its manifest; marks runs over `max_runs`."""
        entry = entry_from_manifest(manifest, name, time.time())
        return self.add(entry)

    def add(self, entry: RegistryEntry) -> RegistryEntry:
        """Add an entry (or replace the one with its id), e.g. a small run's `memory_entry`."""
        with self._change() as runs:
            runs[entry.run_id] = entry
        return self._entries[entry.run_id]

    def set_max_runs(self, max_runs: int | None) -> list[str]:
        """Store the cap on runs (None: no cap) and apply it; the ids it newly marked.

        Beyond `max_runs` runs, the oldest finished ones (by creation) are marked for
        cleanup; running and interrupted runs are never marked, and marked runs do not count.
        """
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"max_runs must be at least 1 or None, got {max_runs}")
        with self._change(max_runs=max_runs) as runs:
            before = dict(runs)
        return newly_marked(before, self._entries)

    def preview_cap(self, max_runs: int) -> list[str]:
        """The ids `set_max_runs(max_runs)` would mark now, changing nothing."""
        self.refresh()
        runs = dict(self._entries)
        apply_cap(runs, max_runs)
        return newly_marked(self._entries, runs)

    def update(self, manifest: Manifest) -> RegistryEntry:
        """Record a run's new status and sizes from its manifest (registering it if needed)."""
        with self._change() as runs:
            old = runs.get(manifest.run_id)
            entry = entry_from_manifest(
                manifest,
                old.name if old else "",
                old.last_accessed if old else time.time(),
                marked=old.marked_for_cleanup if old else False,
            )
            runs[entry.run_id] = entry
        return entry

    def touch(self, run_id: str) -> None:
        """Note that a run was used now (for least-recently-used eviction)."""
        with self._change() as runs:
            if run_id in runs:
                runs[run_id] = msgspec.structs.replace(runs[run_id], last_accessed=time.time())

    def rename(self, run_id: str, name: str) -> None:
        """Give a run a name to find it by."""
        with self._change() as runs:
            runs[run_id] = msgspec.structs.replace(self._require(runs, run_id), name=name)

    def mark_for_cleanup(self, run_id: str, marked: bool = True) -> None:
        """Mark (or unmark) a run to be removed by the next `cleanup()`."""
        with self._change() as runs:
            runs[run_id] = msgspec.structs.replace(
                self._require(runs, run_id), marked_for_cleanup=marked
            )

    def delete(self, run_id: str, force: bool = False) -> None:
        """Remove a run's directory and entry; a running run only with `force`."""
        with self._change() as runs:
            entry = live_entry(self._require(runs, run_id))
            if entry.status == "running" and not force:
                raise AmdsimError(f"run {run_id} is still running; cancel it first (or force)")
            if entry.storage == "parquet":  # a small run's --out folder is the user's own
                remove_run_directory(self.run_dir(run_id))  # never through a link
            del runs[run_id]

    def remove_marked(self, dry_run: bool = False) -> list[str]:
        """Delete the runs marked for cleanup that no supervisor holds; the ids removed.

        A small run's entry goes, never its --out folder (outside the root, the user's own).
        """
        with self._change() as runs:
            apply_cap(runs, self._max_runs)
            return remove_marked(self.root, runs, dry_run)

    def cleanup(self, dry_run: bool = False, orphans: bool = False) -> dict[str, list[str]]:
        """Remove marked runs (and, with `orphans`, empty leftovers); mark vanished runs ``missing``.

        Returns what was done (or, with `dry_run`, what would be): ``removed`` (marked
        runs), ``orphans`` (leftovers removed: unlisted directories holding no manifest and
        no part file), ``kept_orphans`` (leftovers kept, without `orphans`), ``missing``
        (entries whose directory is gone) and ``unreadable`` ("id (reason)": what amdsim
        cannot read, links included, which it never removes). A directory with a readable
        manifest but no entry is a run killed before it registered: it is adopted.
        """
        with self._change() as runs:
            return clean(self.root, runs, self._max_runs, dry_run=dry_run, orphans=orphans)

    # -- internals ------------------------------------------------------------------------

    def _require(self, runs: dict[str, RegistryEntry], run_id: str) -> RegistryEntry:
        if run_id not in runs:
            raise RunNotFoundError(f"no run {run_id!r} under {self.root} (see 'amdsim list')")
        return runs[run_id]

    @contextlib.contextmanager
    def _change(self, max_runs: object = _UNCHANGED) -> Iterator[dict[str, RegistryEntry]]:
        """Lock, read the latest file, let the caller change the runs, apply the cap, write,
        unlock. An `OSError` (read-only file system, ...) becomes a `FileSystemError`."""
        try:
            with _locked(self.root / LOCK_FILE):
                current = read_registry(self.path)
                runs = dict(current.runs)
                cap = current.max_runs if max_runs is _UNCHANGED else max_runs
                assert cap is None or isinstance(cap, int)
                self._max_runs = cap
                yield runs
                apply_cap(runs, cap)
                write_registry(self.path, RegistryFile(runs=runs, max_runs=cap))
        except OSError as exc:
            raise FileSystemError.from_os_error(exc, "cannot change the run registry") from exc
        self._entries, self._max_runs = runs, cap
