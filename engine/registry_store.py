"""The registry file on disk: its schema, reading it, and the lock that serialises changes.

``registry.json`` under the runs root holds every entry and the cap. A change is a
read-modify-write under an exclusive `flock` on ``registry.lock`` (`locked`) that lands with
an atomic rename (`write_registry`), so concurrent CLI runs and dashboard sessions never lose
an update and a reader never sees a half-written file. Readers take no lock.
Does not cover: what the entries mean (`engine.registry_entry`), the transaction itself
(`Registry._change` in `engine.registry`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine.errors import AmdsimError, FileSystemError
from engine.registry_entry import RegistryEntry
from engine.run_dir import write_atomically

__all__ = [
    "LOCK_FILE",
    "LOCK_TIMEOUT_S",
    "REGISTRY_FILE",
    "REGISTRY_FORMAT_VERSION",
    "RegistryFile",
    "RegistryLockedError",
    "locked",
    "read_registry",
    "write_registry",
]

REGISTRY_FILE = "registry.json"
LOCK_FILE = "registry.lock"
REGISTRY_FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 30.0


class RegistryLockedError(AmdsimError):
    """Another process held the registry lock for too long (raised after `LOCK_TIMEOUT_S`).

    Usually a process hung while holding it; if none is running, delete ``registry.lock``.
    """


class RegistryFile(msgspec.Struct, kw_only=True):
    """The whole of ``registry.json``: every run by id, and the cap."""

    format_version: int = REGISTRY_FORMAT_VERSION
    runs: dict[str, RegistryEntry] = {}
    max_runs: int | None = None  # the cap: older finished runs beyond it are marked for cleanup


_DECODER = msgspec.json.Decoder(RegistryFile)


def read_registry(path: Path) -> RegistryFile:
    """The registry at `path`; an empty one if there is no file yet.

    An unreadable file is a `FileSystemError`; a corrupt one an `AmdsimError` naming it (it
    is never overwritten).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return RegistryFile()
    except OSError as exc:
        raise FileSystemError.from_os_error(exc, "cannot read the run registry") from exc
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AmdsimError(f"{path} is not a valid run registry: {exc}") from exc


def write_registry(path: Path, document: RegistryFile) -> None:
    """Replace the registry at `path` atomically (call it holding `locked`); may raise `OSError`."""
    write_atomically(path, msgspec.json.format(msgspec.json.encode(document)))


@contextlib.contextmanager
def locked(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if needed) for the block.

    Polls rather than blocks, so a hung holder becomes a `RegistryLockedError` after
    `timeout_s` instead of a hang.
    """
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
