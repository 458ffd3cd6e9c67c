"""The run registry: one JSON file under the runs root listing every run, safe across processes.

Every change is read-modify-write under an exclusive `flock` on ``registry.lock`` and lands
with an atomic rename of ``registry.json``, so concurrent CLI runs and dashboard sessions
never lose an update and a reader never sees a half-written file. A `Registry` object keeps
the entries it last read; `refresh()` picks up other processes' changes.

A run marked ``running`` whose supervisor is gone (its pid is not alive, or is now another
process) is reported as ``interrupted``: that is how a crash or a kill -9 shows up.

Small runs that stayed in memory are listed too (``storage: memory``, see
`engine.small_runs`); they own no run directory. A cap on the
number of runs (``max_runs``, stored in the file) marks the oldest finished runs for cleanup
whenever the registry changes; `remove_marked` (``amdsim cleanup``, the dashboard's
background task) deletes them, never a run whose supervisor holds its lock.
Does not cover: what is inside a run directory (`engine.manifest`), resuming (`engine.resume`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec
import psutil

from engine.errors import AmdsimError, FileSystemError, RunNotFoundError, RunStateError
from engine.manifest import Manifest
from engine.run_dir import (
    RUN_ID_PATTERN,
    RunLock,
    RunPaths,
    is_real_directory,
    remove_run_directory,
    validate_run_id,
    write_atomically,
)
from engine.run_survey import UnreadableRun, survey_directory

__all__ = [
    "REGISTRY_FILE",
    "Registry",
    "RegistryEntry",
    "RegistryLockedError",
    "supervisor_alive",
]

REGISTRY_FILE = "registry.json"
LOCK_FILE = "registry.lock"
REGISTRY_FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 30.0
ORPHAN_GRACE_S = 60.0  # a run directory this new may be starting up: not an orphan yet

Status = Literal["running", "completed", "failed", "cancelled", "interrupted", "missing"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled", "missing"})


class RegistryLockedError(AmdsimError):
    """Another process held the registry lock for too long (raised after `LOCK_TIMEOUT_S`).

    Usually a process hung while holding it; if none is running, delete ``registry.lock``.
    """


class RegistryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One run as the registry lists it."""

    run_id: str
    name: str = ""
    protocol: str
    status: Status
    storage: Literal["memory", "parquet"] = "parquet"
    created: datetime.datetime
    finished: datetime.datetime | None = None
    n_patients: int
    years: float
    seed: int
    patients: int = 0
    visits: int = 0
    bytes_on_disk: int = 0
    supervisor_pid: int = 0
    supervisor_started: float = 0.0
    last_accessed: float = 0.0
    marked_for_cleanup: bool = False
    error: str = ""
    location: str = ""  # a small run's --out folder (absolute); "" for run dirs and unsaved runs

    @property
    def saved(self) -> bool:
        """False only for a small in-memory run whose results were not saved (no --out)."""
        return self.storage == "parquet" or bool(self.location)


class _RegistryFile(msgspec.Struct, kw_only=True):
    format_version: int = REGISTRY_FORMAT_VERSION
    runs: dict[str, RegistryEntry] = {}
    max_runs: int | None = None  # the cap: older finished runs beyond it are marked for cleanup


_DECODER = msgspec.json.Decoder(_RegistryFile)
_UNCHANGED = object()  # `Registry._change`: keep the stored cap


def supervisor_alive(pid: int, started: float) -> bool:
    """True if `pid` runs and is the process that started at `started` (not a reused pid)."""
    if pid <= 0:
        return False
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.Error:
        return False


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
        current = self._read()
        self._entries, self._max_runs = current.runs, current.max_runs

    def get(self, run_id: str) -> RegistryEntry:
        """One run (as last read), with its status as it stands now."""
        entry = self._entries.get(run_id)
        if entry is None:
            self.refresh()
            entry = self._entries.get(run_id)
        if entry is None:
            raise RunNotFoundError(f"no run {run_id!r} under {self.root} (see 'amdsim list')")
        return self._live(entry)

    def list(self) -> list[RegistryEntry]:
        """Every run, newest first, statuses as they stand now."""
        self.refresh()
        entries = self._entries
        if any((child / "manifest.json").is_file() for child in self._unlisted()):
            try:
                with self._change() as runs:
                    self._adopt(runs)
                entries = self._entries
            except FileSystemError:  # a read-only root: list them without recording them
                entries = dict(self._entries)
                self._adopt(entries)
        return sorted(
            (self._live(e) for e in entries.values()), key=lambda e: e.created, reverse=True
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
        `engine.run_survey`); call `list()` first so that readable ones are adopted.
        """
        unreadable = []
        for child in sorted(self.root.iterdir()):
            if RUN_ID_PATTERN.match(child.name) and child.name not in self._entries:
                problem = survey_directory(child).problem
                if problem:
                    unreadable.append(UnreadableRun(run_id=child.name, reason=problem))
        return unreadable

    def run_dir(self, run_id: str) -> Path:
        """Where run `run_id` lives (the id is validated, so this is never outside the root)."""
        return self.root / validate_run_id(run_id)

    # -- changing -------------------------------------------------------------------------

    def register(self, manifest: Manifest, name: str = "") -> RegistryEntry:
        """Add a run (or replace its entry) from its manifest; marks runs over `max_runs`."""
        entry = _entry_from_manifest(manifest, name, time.time())
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
            before = {run_id for run_id, e in runs.items() if e.marked_for_cleanup}
        return sorted(
            run_id
            for run_id, e in self._entries.items()
            if e.marked_for_cleanup and run_id not in before
        )

    def preview_cap(self, max_runs: int) -> list[str]:
        """The ids `set_max_runs(max_runs)` would mark now, changing nothing."""
        self.refresh()
        runs = dict(self._entries)
        self._apply_cap(runs, max_runs)
        return sorted(
            i
            for i, e in runs.items()
            if e.marked_for_cleanup != self._entries[i].marked_for_cleanup
        )

    def update(self, manifest: Manifest) -> RegistryEntry:
        """Record a run's new status and sizes from its manifest (registering it if needed)."""
        with self._change() as runs:
            old = runs.get(manifest.run_id)
            entry = _entry_from_manifest(
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
            entry = self._live(self._require(runs, run_id))
            if entry.status == "running" and not force:
                raise AmdsimError(f"run {run_id} is still running; cancel it first (or force)")
            if entry.storage == "parquet":  # a small run's --out folder is the user's own
                self._remove_directory(run_id)
            del runs[run_id]

    def remove_marked(self, dry_run: bool = False) -> list[str]:
        """Delete the runs marked for cleanup that no supervisor holds; the ids removed.

        A small run's entry goes, never its --out folder (outside the root, the user's own).
        """
        with self._change() as runs:
            self._apply_cap(runs, self._max_runs)
            return self._remove_marked(runs, dry_run)

    def cleanup(self, dry_run: bool = False, orphans: bool = False) -> dict[str, list[str]]:
        """Remove marked runs (and, with `orphans`, empty leftovers); mark vanished runs ``missing``.

        Returns what was done (or, with `dry_run`, what would be): ``removed`` (marked
        runs), ``orphans`` (leftovers removed: unlisted directories holding no manifest and
        no part file), ``kept_orphans`` (leftovers kept, without `orphans`), ``missing``
        (entries whose directory is gone) and ``unreadable`` ("id (reason)": what amdsim
        cannot read, links included, which it never removes). A directory with a readable
        manifest but no entry is a run killed before it registered: it is adopted.
        """
        report: dict[str, list[str]] = {
            "removed": [],
            "orphans": [],
            "kept_orphans": [],
            "missing": [],
            "unreadable": [],
        }
        with self._change() as runs:
            self._adopt(runs)
            self._apply_cap(runs, self._max_runs)
            report["removed"] = self._remove_marked(runs, dry_run)
            for run_id, entry in list(runs.items()):
                if run_id in report["removed"]:
                    continue
                if self.run_dir(run_id).is_symlink():
                    report["unreadable"].append(f"{run_id} (a symbolic link; left alone)")
                elif not self._present(entry) and entry.status != "missing":
                    report["missing"].append(run_id)
                    if not dry_run:
                        runs[run_id] = msgspec.structs.replace(entry, status="missing")
            for child in sorted(self.root.iterdir()):
                if not RUN_ID_PATTERN.match(child.name) or child.name in runs:
                    continue
                survey = survey_directory(child)
                if survey.problem:
                    report["unreadable"].append(f"{child.name} ({survey.problem})")
                elif survey.leftover and not _being_started(child):
                    report["orphans" if orphans else "kept_orphans"].append(child.name)
                    if orphans and not dry_run:
                        remove_run_directory(child)
        return report

    # -- internals ------------------------------------------------------------------------

    def _unlisted(self, runs: dict[str, RegistryEntry] | None = None) -> list[Path]:
        """Run directories under the root that no entry owns."""
        owned = self._entries if runs is None else runs
        return [
            child
            for child in sorted(self.root.iterdir())
            if is_real_directory(child)
            and RUN_ID_PATTERN.match(child.name)
            and child.name not in owned
        ]

    def _adopt(self, runs: dict[str, RegistryEntry]) -> None:
        """Register unlisted directories that hold a readable manifest: runs killed between
        writing their manifest and registering (the registry is an index of the manifests)."""
        for child in self._unlisted(runs):
            manifest = survey_directory(child).manifest  # None unless its own and readable
            if manifest is not None:
                runs[child.name] = _entry_from_manifest(manifest, "", time.time())

    def _live(self, entry: RegistryEntry) -> RegistryEntry:
        if entry.status == "running" and not supervisor_alive(
            entry.supervisor_pid, entry.supervisor_started
        ):
            return msgspec.structs.replace(entry, status="interrupted")
        return entry

    def _require(self, runs: dict[str, RegistryEntry], run_id: str) -> RegistryEntry:
        if run_id not in runs:
            raise RunNotFoundError(f"no run {run_id!r} under {self.root} (see 'amdsim list')")
        return runs[run_id]

    def _remove_directory(self, run_id: str) -> None:
        """Delete a run's directory, if there is one; never through a link (`RunPathError`)."""
        remove_run_directory(self.run_dir(run_id))

    def _present(self, entry: RegistryEntry) -> bool:
        """Whether what the entry lists is still there (an unsaved small run always is)."""
        if entry.storage == "memory":
            return not entry.location or Path(entry.location).is_dir()
        return self.run_dir(entry.run_id).is_dir()

    def _remove_marked(self, runs: dict[str, RegistryEntry], dry_run: bool) -> list[str]:
        removed = []
        for run_id, entry in list(runs.items()):
            if not entry.marked_for_cleanup or self._live(entry).status == "running":
                continue
            if self.run_dir(run_id).is_symlink():  # never followed: cleanup reports it
                continue
            if entry.storage == "parquet" and not dry_run:
                if not self._remove_unless_held(run_id):
                    continue
            elif entry.storage == "parquet" and _held(self.run_dir(run_id)):
                continue
            removed.append(run_id)
            if not dry_run:
                del runs[run_id]
        return removed

    def _remove_unless_held(self, run_id: str) -> bool:
        """Delete a run's directory under its run lock; False if a supervisor holds it."""
        run_dir = self.run_dir(run_id)
        if not run_dir.is_dir():
            return True
        try:
            lock = RunLock(RunPaths(run_dir))
        except RunStateError:
            return False
        try:
            self._remove_directory(run_id)
        finally:
            lock.release()
        return True

    @staticmethod
    def _apply_cap(runs: dict[str, RegistryEntry], max_runs: int | None) -> None:
        """Mark the oldest finished runs until at most `max_runs` remain unmarked."""
        if max_runs is None:
            return
        kept = [e for e in runs.values() if not e.marked_for_cleanup]
        excess = len(kept) - max_runs
        if excess <= 0:
            return
        finished = sorted((e for e in kept if e.status in FINISHED), key=lambda e: e.created)
        for entry in finished[:excess]:
            runs[entry.run_id] = msgspec.structs.replace(entry, marked_for_cleanup=True)

    def _read(self) -> _RegistryFile:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return _RegistryFile()
        except OSError as exc:
            raise FileSystemError.from_os_error(exc, "cannot read the run registry") from exc
        try:
            return _DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise AmdsimError(f"{self.path} is not a valid run registry: {exc}") from exc

    @contextlib.contextmanager
    def _change(self, max_runs: object = _UNCHANGED) -> Iterator[dict[str, RegistryEntry]]:
        """Lock, read the latest file, let the caller change the runs, apply the cap, write,
        unlock. An `OSError` (read-only file system, ...) becomes a `FileSystemError`."""
        try:
            with _locked(self.root / LOCK_FILE):
                current = self._read()
                runs = dict(current.runs)
                cap = current.max_runs if max_runs is _UNCHANGED else max_runs
                assert cap is None or isinstance(cap, int)
                self._max_runs = cap
                yield runs
                self._apply_cap(runs, cap)
                document = _RegistryFile(runs=runs, max_runs=cap)
                write_atomically(self.path, msgspec.json.format(msgspec.json.encode(document)))
        except OSError as exc:
            raise FileSystemError.from_os_error(exc, "cannot change the run registry") from exc
        self._entries, self._max_runs = runs, cap


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


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    deadline = time.monotonic() + timeout_s
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise RegistryLockedError(
                        f"{path} stayed locked for {timeout_s:.0f} s; if no amdsim process is running, delete it"
                    ) from exc
                time.sleep(0.005)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _entry_from_manifest(
    manifest: Manifest, name: str, accessed: float, marked: bool = False
) -> RegistryEntry:
    return RegistryEntry(
        run_id=manifest.run_id,
        name=name,
        protocol=manifest.protocol.name,
        status=manifest.status,
        created=manifest.created,
        finished=manifest.finished,
        n_patients=manifest.parameters.n_patients,
        years=manifest.parameters.years,
        seed=manifest.parameters.seed,
        patients=manifest.totals.patients,
        visits=manifest.totals.visits,
        bytes_on_disk=manifest.bytes_on_disk,
        supervisor_pid=manifest.supervisor_pid,
        supervisor_started=manifest.supervisor_started,
        last_accessed=accessed,
        marked_for_cleanup=marked,
        error=manifest.error,
    )
