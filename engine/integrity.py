"""Checking a run's part files against the run: identity, shape and every page's checksum.

A part file is trusted only if it is the file the checkpoint lists: its size, a readable
footer, its own run id (``amdsim.run_id``, so a file copied from another run is refused), its
table, the shard parts it holds (``amdsim.locations``/``amdsim.shard_parts``) and the row
count of each of them. A deep check then reads every row group, which verifies the CRC
checksum of every page (written by engine.pipeline.parts), so garbage anywhere in a file is
found, compressed or not. `amdsim verify` and `resume` run the deep check; readers
(engine.results.parquet) check identity when they open a file and checksums as they read.

A completed run whose checkpoint.json is lost still opens: the index is rebuilt from the
part files' metadata (`load_index`).

Covers: what "intact" means for a part file and the damage report. Does not cover: writing
(engine.pipeline.parts), resuming (engine.resume), reading rows (engine.results.parquet).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import ResultsFormatError
from engine.manifest import Checkpoint, Manifest, PartFile, ShardLocation, read_checkpoint
from engine.run_dir import TABLES, RunPaths

__all__ = [
    "Damage",
    "check_part_identity",
    "describe_damage",
    "load_index",
    "locations_by_file",
    "open_part_file",
    "rebuild_checkpoint",
    "verify_run",
]


class Damage(msgspec.Struct, frozen=True, kw_only=True):
    """One damaged file of a run: its path inside the run directory and what is wrong."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


def open_part_file(path: Path) -> pq.ParquetFile:
    """A part file opened for reading with page checksums verified on every read.

    Raises `ResultsFormatError` naming the file when it is missing or its footer is unreadable.
    """
    try:
        return _open(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsFormatError(f"{path} cannot be read: {exc}") from exc


def _open(path: Path) -> pq.ParquetFile:
    return pq.ParquetFile(path, page_checksum_verification=True)


def check_part_identity(
    path: Path,
    metadata: pq.FileMetaData,
    run_id: str,
    table: str,
    expected: Iterable[ShardLocation] | None = None,
) -> None:
    """Raise `ResultsFormatError` unless the file belongs to run `run_id` and `table` and
    holds exactly the shard parts `expected`, with their row counts (footer only, no rows)."""
    found = _identity_problem(metadata, run_id, table, expected)
    if found is not None:
        separator, problem = found
        raise ResultsFormatError(f"{path}{separator}{problem}")


def locations_by_file(locations: Iterable[ShardLocation]) -> dict[int, list[ShardLocation]]:
    """The shard parts of `locations` grouped by the part file holding them (order kept)."""
    by_file: dict[int, list[ShardLocation]] = {}
    for location in locations:
        by_file.setdefault(location.file, []).append(location)
    return by_file


def verify_run(paths: RunPaths, manifest: Manifest, checkpoint: Checkpoint) -> list[Damage]:
    """Every damaged file the checkpoint lists (empty: all intact), one entry per file.

    Checks size, footer, run id, table, shard parts and row counts, then reads every row
    group so every page checksum is verified. Memory: one row group at a time.
    """
    damage = []
    if checkpoint.run_id != manifest.run_id:
        damage.append(
            Damage(
                file=paths.checkpoint.name,
                problem=f"belongs to run {checkpoint.run_id}, not {manifest.run_id}",
            )
        )
        return damage
    by_file = locations_by_file(checkpoint.shards)
    for part in checkpoint.parts:
        for table in TABLES:
            problem = _file_problem(paths, manifest.run_id, part, table, by_file.get(part.number))
            if problem is not None:
                name = part.patients_file if table == "patients" else part.visits_file
                damage.append(Damage(file=f"{table}/{name}", problem=problem))
    return damage


def describe_damage(run_id: str, damage: list[Damage]) -> str:
    """One sentence for an error: which files are damaged, and what to do."""
    shown = "; ".join(str(item) for item in damage[:3])
    more = f" and {len(damage) - 3} more" if len(damage) > 3 else ""
    return (
        f"run {run_id} has {len(damage)} damaged file{'s' * (len(damage) != 1)}: {shown}{more}; "
        f"restore them from a backup or run it again ('amdsim run --restart {run_id}')"
    )


def load_index(paths: RunPaths, manifest: Manifest) -> Checkpoint:
    """The run's index: checkpoint.json; for a completed run without one, rebuilt from its
    part files; otherwise empty (nothing was safely written yet). An unreadable checkpoint
    stays an error (`ResultsFormatError`): damage is reported, not papered over."""
    if paths.checkpoint.is_file():
        return read_checkpoint(paths.checkpoint)
    if manifest.status == "completed":
        return rebuild_checkpoint(paths, manifest)
    return Checkpoint(run_id=manifest.run_id)


def rebuild_checkpoint(paths: RunPaths, manifest: Manifest) -> Checkpoint:
    """A completed run's index from its part files' metadata (its checkpoint.json is lost).

    Statistics stay in stats.json, so the rebuilt checkpoint carries none. Raises
    `ResultsFormatError` when a file is not this run's or the files do not hold every patient.
    """
    parts, shards = [], []
    for patients_path in paths.part_files("patients"):
        number = int(patients_path.stem.removeprefix("part-"))
        visits_path = paths.part_file("visits", number)
        if not visits_path.is_file():
            raise ResultsFormatError(
                f"{paths.checkpoint} is missing and {visits_path} too; the run cannot be indexed"
            )
        handle = open_part_file(patients_path)
        try:
            metadata = handle.metadata
            check_part_identity(patients_path, metadata, manifest.run_id, "patients")
            encoded = _key_values(metadata).get("amdsim.locations")
            if encoded is None:
                raise ResultsFormatError(
                    f"{paths.checkpoint} is missing and {patients_path} predates the metadata "
                    "needed to rebuild it; restore it from a backup"
                )
            locations = msgspec.json.decode(encoded, type=list[ShardLocation])
            row_groups = metadata.num_row_groups
        finally:
            handle.close()
        shards += [msgspec.structs.replace(location, file=number) for location in locations]
        parts.append(
            PartFile(
                number=number,
                patients_file=patients_path.name,
                visits_file=visits_path.name,
                row_groups=row_groups,
                patients_bytes=patients_path.stat().st_size,
                visits_bytes=visits_path.stat().st_size,
            )
        )
    held = sum(location.patients for location in shards)
    if held != manifest.parameters.n_patients:
        raise ResultsFormatError(
            f"{paths.checkpoint} is missing and the part files hold {held:,} of the run's "
            f"{manifest.parameters.n_patients:,} patients; restore it from a backup"
        )
    return Checkpoint(
        run_id=manifest.run_id,
        parts=parts,
        shards=shards,
        uncompressed_bytes=manifest.uncompressed_bytes,
    )


def _file_problem(
    paths: RunPaths,
    run_id: str,
    part: PartFile,
    table: str,
    locations: list[ShardLocation] | None,
) -> str | None:
    """What is wrong with one listed file, or None."""
    name = part.patients_file if table == "patients" else part.visits_file
    path = paths.table_dir(table) / name
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    listed = part.patients_bytes if table == "patients" else part.visits_bytes
    if size != listed:
        return f"{size:,} bytes, the checkpoint says {listed:,} (truncated or replaced)"
    try:
        handle = _open(path)
    except (OSError, pa.ArrowException) as exc:
        return f"footer unreadable ({exc})"
    try:
        try:
            found = _identity_problem(handle.metadata, run_id, table, locations or [])
        except ResultsFormatError as exc:  # unreadable metadata: the message names no file
            return str(exc)
        if found is not None:
            return found[1]
        for row_group in range(handle.metadata.num_row_groups):
            try:
                handle.read_row_group(row_group)
            except (OSError, pa.ArrowException) as exc:
                return f"row group {row_group} is damaged ({exc})"
    finally:
        handle.close()
    return None


def _identity_problem(
    metadata: pq.FileMetaData,
    run_id: str,
    table: str,
    expected: Iterable[ShardLocation] | None,
) -> tuple[str, str] | None:
    """What keeps a file from being run `run_id`'s `table` file holding `expected`, or None.

    The problem names no file: it comes with the separator that follows the file's path in
    `check_part_identity`'s message (" " or ": ").
    """
    values = _key_values(metadata)
    owner = values.get("amdsim.run_id")
    if owner != run_id:
        origin = f"belongs to run {owner}" if owner else "carries no amdsim run id"
        return " ", (
            f"{origin}, not {run_id} (copied from another run?); restore the run's own "
            f"file or run it again ('amdsim run --restart {run_id}')"
        )
    if values.get("amdsim.table", table) != table:
        return " ", f"holds the {values['amdsim.table']} table, not {table} (files swapped?)"
    if expected is None:
        return None
    expected = list(expected)
    held = _held_parts(values)
    listed = sorted((location.shard, location.part) for location in expected)
    if held is not None and sorted(held) != listed:
        return " ", (
            f"holds shard parts {_span(held)} but the checkpoint lists {_span(listed)} "
            "there (a file from another run or another place?)"
        )
    for location in expected:
        first = location.patients_row_group if table == "patients" else location.visits_row_group
        count = 1 if table == "patients" else location.row_group_count
        if first + count > metadata.num_row_groups:
            return " ", (
                f"has {metadata.num_row_groups} row groups; shard {location.shard} "
                f"needs row groups {first}..{first + count - 1}"
            )
        rows = sum(metadata.row_group(first + i).num_rows for i in range(count))
        wanted = location.patients if table == "patients" else location.visits
        if rows != wanted:
            return ": ", (
                f"shard {location.shard} has {rows:,} {table} rows in row group "
                f"{first}, the checkpoint says {wanted:,}"
            )
    return None


def _key_values(metadata: pq.FileMetaData) -> dict[str, str]:
    raw = metadata.metadata or {}
    return {
        key.decode(errors="replace"): value.decode(errors="replace") for key, value in raw.items()
    }


def _held_parts(values: dict[str, str]) -> list[tuple[int, int]] | None:
    """The (shard, part) pairs a file says it holds, or None if it does not say."""
    encoded = values.get("amdsim.shard_parts")
    if encoded is None:
        return None
    try:
        return [(int(shard), int(part)) for shard, part in json.loads(encoded)]
    except (ValueError, TypeError) as exc:
        raise ResultsFormatError(f"unreadable amdsim.shard_parts metadata: {exc}") from exc


def _span(parts: list[tuple[int, int]]) -> str:
    shards = sorted({shard for shard, _ in parts})
    if not shards:
        return "none"
    return f"of shards {shards[0]}..{shards[-1]} ({len(parts)})"
