"""Run directories: ids, the layout inside one, and atomic file replacement.

    <runs root>/<run_id>/
        manifest.json          status, protocol, parameters, totals, sizes (engine.manifest)
        run.lock               held (flock) by the supervisor while the run is going
        checkpoint.json        closed part files, shard -> (file, row group), statistics so far
        stats.json             the run's statistics, once it has finished
        live-stats.msgpack     counts of the rows written so far, while it runs
        patients/part-00000.parquet ...
        visits/part-00000.parquet ...

Every file is written under a hidden temporary name and renamed into place, so a crash
never leaves a file that looks complete but is not (readers skip names starting with ".").

A run directory is a real directory, and so are its table folders: amdsim refuses a symbolic
link in their place (`check_run_directory`) and never follows one when it deletes
(`remove_run_directory`), so nothing outside the runs root is read, written or removed
through a link planted under a run's name.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.durable import fsync_directory
from engine.errors import ParameterError, RunNotFoundError, RunPathError, RunStateError

__all__ = [
    "RunLock",
    "RunPaths",
    "check_run_directory",
    "is_real_directory",
    "new_run_id",
    "remove_run_directory",
    "validate_run_id",
    "write_atomically",
]

RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
TABLES = ("patients", "visits")
TEMPORARY_PREFIX = "."
TEMPORARY_SUFFIX = ".tmp"


def new_run_id(now: datetime.datetime | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx`` in local time with four random hex digits."""
    now = now or datetime.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def validate_run_id(run_id: str) -> str:
    """Return `run_id` if it is a well-formed id (so never a path); else raise `ParameterError`."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ParameterError(f"{run_id!r} is not a run id (expected YYYYMMDD-HHMMSS-xxxx)")
    return run_id


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where each file of one run lives."""

    root: Path

    @property
    def manifest(self) -> Path:
        """The run's manifest.json."""
        return self.root / "manifest.json"

    @property
    def lock(self) -> Path:
        """Locked by the process supervising the run; the kernel frees it when that dies."""
        return self.root / "run.lock"

    @property
    def checkpoint(self) -> Path:
        """What is safely on disk: part files, where each shard is, and the statistics so far."""
        return self.root / "checkpoint.json"

    @property
    def stats(self) -> Path:
        """The run's final statistics."""
        return self.root / "stats.json"

    @property
    def cluster_token(self) -> Path:
        """Which client owns a cluster run now; its tasks stop when it changes or goes."""
        return self.root / "cluster-token"

    @property
    def live_stats(self) -> Path:
        """Counts of the rows written so far, rewritten every second while the run goes."""
        return self.root / "live-stats.msgpack"

    def table_dir(self, table: str) -> Path:
        """The folder of one table's part files."""
        return self.root / table

    def part_file(self, table: str, number: int) -> Path:
        """The final name of part file `number` of `table`."""
        return self.table_dir(table) / f"part-{number:05d}.parquet"

    def part_files(self, table: str) -> list[Path]:
        """The finished part files of `table` in the directory (listed or not in a checkpoint)."""
        return sorted(self.table_dir(table).glob("part-*.parquet"))

    def temporary_files(self) -> list[Path]:
        """Files left under temporary names (by a crash) anywhere in the run."""
        return [
            path
            for path in self.root.rglob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}")
            if path.is_file()
        ]

    def bytes_on_disk(self) -> int:
        """Size of the finished part files of both tables."""
        return sum(
            path.stat().st_size
            for table in TABLES
            for path in self.table_dir(table).glob("part-*.parquet")
        )


def is_real_directory(path: Path) -> bool:
    """True if `path` itself is a directory: a symbolic link to one is not."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def check_run_directory(path: Path) -> Path:
    """Return `path` if it is a real directory whose table folders, where present, are too.

    Raises `RunNotFoundError` if nothing is there, `RunPathError` otherwise: a link named like a run would lead amdsim out of its runs
    root, and a linked ``visits/`` would have a resume delete part files of another run.
    """
    if path.is_symlink():
        raise RunPathError(
            f"{path} is a symbolic link, not a run directory; amdsim does not follow links to runs"
        )
    if not os.path.lexists(path):
        raise RunNotFoundError(f"{path} does not exist")
    if not is_real_directory(path):
        raise RunPathError(f"{path} is not a run directory")
    for table in TABLES:
        folder = path / table
        if os.path.lexists(folder) and not is_real_directory(folder):
            raise RunPathError(
                f"{folder} is a symbolic link or a file, not the run's {table} folder; "
                "amdsim does not follow links out of a run directory"
            )
    return path


def remove_run_directory(path: Path) -> bool:
    """Delete the run directory `path` and all it holds, never following a symbolic link.

    Returns False if there was nothing to delete. Raises `RunPathError` (touching nothing)
    when `path` is a link or a file, and `OSError` when the file system refuses. Links inside
    the run are removed as links: `shutil.rmtree` never descends into one.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
        raise RunPathError(f"{path} is {kind}; amdsim deletes only real run directories")
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux and macOS have it
        raise RunPathError(f"cannot delete {path} safely on this platform; delete it yourself")
    shutil.rmtree(path)
    return True


def temporary_name(path: Path) -> Path:
    """The hidden name `path` is written under before it is renamed into place."""
    return path.with_name(f"{TEMPORARY_PREFIX}{path.name}{TEMPORARY_SUFFIX}")


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: write, flush to disk, rename, flush the folder.

    If anything fails (a full disk), `path` is left as it was and the temporary removed.
    """
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)  # the rename itself survives a power cut (engine.durable)


class RunLock:
    """An exclusive `flock` on a run's ``run.lock``: one supervisor per run directory.

    Taken by a supervisor before it touches a run and held until it ends; a killed process
    loses it at once (the kernel drops the lock), so the next resume never waits for it.
    """

    def __init__(self, paths: RunPaths) -> None:
        """Take the lock or raise `RunStateError` if another process holds it."""
        self.path = paths.lock
        self._handle = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunStateError(
                    f"run {paths.root.name} is in use by another amdsim process"
                ) from exc
            raise

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        if not self._handle.closed:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
