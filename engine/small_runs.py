"""Small runs in the registry: runs that stayed in memory have an entry but no run directory.

A small run (up to `MEMORY_THRESHOLD_PATIENTS` patients) is listed like any other, with
``storage: memory`` and the folder it was saved to with ``--out`` (absolute), or none: it was
"not saved", and only the process that ran it ever held its rows. Commands that read a run
ask `results_location`, which names the folder or says why there is none.
Does not cover: the registry itself (`engine.registry`), saving results (`engine.results`).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from engine.errors import RunNotFoundError
from engine.model.parameters import RunParameters
from engine.registry import Registry, RegistryEntry
from engine.run_dir import validate_run_id

__all__ = ["entry_location", "memory_entry", "results_location", "saved_location"]


def memory_entry(
    run_id: str,
    protocol: str,
    params: RunParameters,
    counts: tuple[int, int],
    created: datetime.datetime,
    location: Path | None = None,
    name: str = "",
    notes: str = "",
) -> RegistryEntry:
    """The entry of a small run that stayed in memory: completed, saved to `location` or not.

    `counts` are the (patients, visits) simulated; `location` is stored absolute, so the
    entry is found from any working directory.
    """
    folder = location.resolve() if location is not None else None
    size = 0
    if folder is not None and folder.is_dir():
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return RegistryEntry(
        run_id=validate_run_id(run_id),
        name=name,
        notes=notes,
        protocol=protocol,
        status="completed",
        storage="memory",
        created=created,
        finished=datetime.datetime.now(datetime.UTC),
        n_patients=params.n_patients,
        years=params.years,
        seed=params.seed,
        patients=counts[0],
        visits=counts[1],
        bytes_on_disk=size,
        last_accessed=time.time(),
        location=str(folder) if folder is not None else "",
    )


def saved_location(entry: RegistryEntry) -> Path:
    """Where a small run's results were saved; `RunNotFoundError` saying why there are none."""
    if not entry.location:
        raise RunNotFoundError(
            f"run {entry.run_id} ran in memory and was not saved: run it again with --out DIR "
            "to keep its results"
        )
    location = Path(entry.location)
    if not location.is_dir():
        raise RunNotFoundError(f"run {entry.run_id} was saved to {location}, which is gone")
    return location


def results_location(registry: Registry, run_id: str) -> Path:
    """Where run `run_id`'s results are: its run directory, or a small run's --out folder.

    Raises `RunNotFoundError` if it is not listed, or saying why a small run has no results.
    """
    return entry_location(registry, registry.get(run_id))


def entry_location(registry: Registry, entry: RegistryEntry) -> Path:
    """`results_location` of a run whose registry entry is at hand (no second look-up)."""
    return saved_location(entry) if entry.storage == "memory" else registry.run_dir(entry.run_id)
