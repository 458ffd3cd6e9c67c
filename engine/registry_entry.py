"""One run as the registry lists it: the entry, its statuses, and how a manifest becomes one.

An entry is an index card. The run's manifest (`engine.manifest`) is the truth; the entry
copies what listing, searching and the cap need, and adds what only the registry knows: a
name, the last access, the cleanup mark, a small run's --out folder.
Does not cover: the file holding the entries (`engine.registry_store`), whether a running
run's supervisor is still alive (`engine.run_liveness`).
"""

from __future__ import annotations

import datetime
from typing import Literal

import msgspec

from engine.manifest import Manifest

__all__ = ["FINISHED", "RegistryEntry", "Status", "entry_from_manifest"]

Status = Literal["running", "completed", "failed", "cancelled", "interrupted", "missing"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled", "missing"})


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
    notes: str = ""  # why the run was made (its manifest's notes)

    @property
    def label(self) -> str:
        """How pages name the run: its name if it has one, else its id."""
        return self.name or self.run_id

    @property
    def saved(self) -> bool:
        """False only for a small in-memory run whose results were not saved (no --out)."""
        return self.storage == "parquet" or bool(self.location)


def entry_from_manifest(
    manifest: Manifest, name: str, accessed: float, marked: bool = False
) -> RegistryEntry:
    """The entry listing a run directory, from its manifest; `accessed` is a `time.time()`."""
    return RegistryEntry(
        run_id=manifest.run_id,
        name=name or manifest.name,
        notes=manifest.notes,
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
