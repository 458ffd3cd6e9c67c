"""The manifest and shard index of a run directory (DESIGN section 5), as msgspec structs.

`manifest.json` says what the run is and how it ended; `checkpoint.json` says what is safely
on disk: the closed part files, where every shard's rows are (so one patient is found by
reading one row group), and the statistics of exactly those shards, in one atomic file so
that a resumed run never pairs rows with the wrong statistics. Both carry `format_version`;
fields added later get defaults and go last, so older files keep loading.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

import msgspec

from engine.formats import Upgrades, decode_versioned, stored_version
from engine.model.any_protocol import StoredProtocol, dec_hook
from engine.model.parameters import RunParameters
from engine.reproducibility import Reproducibility
from engine.run_dir import RunPaths, write_atomically
from engine.stats.run_stats import AccumulatorState, RunStatistics
from engine.totals import RunTotals
from ipc.messages import StageTimes

__all__ = [
    "FORMAT_VERSION",
    "ROW_GROUP_PATIENTS",
    "Checkpoint",
    "Compression",
    "Manifest",
    "PartFile",
    "RunStatus",
    "ShardLocation",
    "decode_manifest",
    "read_checkpoint",
    "read_manifest",
    "write_checkpoint",
    "write_manifest",
    "write_run_end",
]

# The newest run-directory format. Format 2 added the time-based model's runs (its protocol,
# patients columns and outcome statistics) and the reproducibility record; a run writes the
# format of its model (`engine.model.interface.format_version_of`), so runs of visit-based
# protocols still write format 1 and their files are those of earlier versions.
FORMAT_VERSION = 2
# Steps bringing older files up to date (engine.formats): version n -> n + 1, as JSON data.
# Format 1 documents are valid format 2 ones (every field format 2 added has a default, and a
# protocol without `model_type` decodes as visit-based).
MANIFEST_UPGRADES: Upgrades = {1: lambda document: document}
CHECKPOINT_UPGRADES: Upgrades = {1: lambda document: document}
RunStatus = Literal["running", "completed", "failed", "cancelled"]
Compression = Literal["zstd", "snappy", "gzip", "none"]
# Patients per Parquet row group. A lookup reads one row group of each table, so smaller
# finds one patient faster (1024 patients, ~20k visits over 5 years: ~0.5 ms to read) at the
# cost of bigger footers (~1 kB per row group) and slightly slower writes
# (perf/bench_results.py).
ROW_GROUP_PATIENTS = 1024


class ShardLocation(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Where one part of one shard is: part file number and row groups in each table.

    The part's patients are row group `patients_row_group` of its patients file. Its visits
    are row groups ``visits_row_group ...`` of its visits file, the visits of
    `row_group_patients` whole patients each (the last may hold fewer), so one patient's
    visits are always in one row group; 0 means the visits are one row group.
    """

    shard: int
    part: int
    part_count: int
    file: int
    patients_row_group: int
    visits_row_group: int
    first_patient: int
    patients: int
    visits: int
    row_group_patients: int = 0

    @property
    def row_group_count(self) -> int:
        """Row groups the part's visits span."""
        if self.row_group_patients <= 0:
            return 1
        return -(-self.patients // self.row_group_patients)

    def row_group_of(self, patient_id: int) -> int:
        """Offset (from the part's first visits row group) of the one holding `patient_id`."""
        if self.row_group_patients <= 0:
            return 0
        return (patient_id - self.first_patient) // self.row_group_patients


class PartFile(msgspec.Struct, frozen=True, kw_only=True):
    """A finished (closed and renamed) pair of part files."""

    number: int
    patients_file: str
    visits_file: str
    row_groups: int  # in the patients file: one per shard part
    patients_bytes: int
    visits_bytes: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Every shard part safely on disk, the files holding them, and their statistics."""

    format_version: int = FORMAT_VERSION
    run_id: str
    parts: list[PartFile] = []
    shards: list[ShardLocation] = []
    stats: AccumulatorState | None = None
    uncompressed_bytes: int = 0


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a run is, where it stands and what it produced."""

    format_version: int = FORMAT_VERSION
    run_id: str
    status: RunStatus
    protocol: StoredProtocol  # Protocol or TimeBasedProtocol (engine.model.any_protocol)
    parameters: RunParameters
    shard_count: int
    compression: Compression
    workers: int
    created: datetime.datetime
    finished: datetime.datetime | None = None
    package_version: str
    supervisor_pid: int
    supervisor_started: float
    metrics_address: str = ""
    totals: RunTotals = RunTotals()
    bytes_on_disk: int = 0
    uncompressed_bytes: int = 0
    compression_ratio: float = 0.0
    error: str = ""
    # Added after format 1's first files; defaults keep those loading.
    slot_bytes: int = 4 << 20  # how shards were cut into parts: a resume must cut the same way
    checkpoint_every: int = 0  # patients between checkpoints (0: only when part files roll)
    resumes: int = 0  # how many times the run was resumed after an interruption
    reproducibility: Reproducibility | None = None  # DESIGN section 3; None before format 2
    # A run on a Dask cluster (engine.cluster): its scheduler and the scheduler's dashboard.
    cluster: str = ""
    cluster_dashboard: str = ""
    # What the user called the run and why they ran it (CLI --name/--notes, the dashboard's
    # form); shown instead of the id. Metadata only: no row depends on them.
    name: str = ""
    notes: str = ""
    # Where each worker and writer thread spent its time in the last session of the run
    # (engine.pipeline.stage_clock; a resume replaces them); empty for in-memory and
    # cluster runs.
    stage_timings: list[StageTimes] = []

    @property
    def patients(self) -> int:
        """Patients written."""
        return self.totals.patients

    @property
    def visits(self) -> int:
        """Visits written."""
        return self.totals.visits


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically."""
    write_atomically(path, msgspec.json.format(msgspec.json.encode(manifest)))


def read_manifest(path: Path) -> Manifest:
    """Load a manifest of any format version; `ResultsFormatError` if it is not one.

    `format_version` stays the run's format as written (runs of visit-based protocols are
    format 1 forever), so a manifest read and written back keeps its format.
    """
    data = path.read_bytes()
    manifest = decode_versioned(
        data, Manifest, FORMAT_VERSION, MANIFEST_UPGRADES, str(path), "manifest", dec_hook=dec_hook
    )
    written = stored_version(data)
    if written != manifest.format_version:  # upgraded: every step so far only adds defaults
        manifest = msgspec.structs.replace(manifest, format_version=written)
    return manifest


def decode_manifest(data: bytes) -> Manifest:
    """A manifest this amdsim encoded (e.g. handed to the writer process)."""
    return msgspec.json.decode(data, type=Manifest, dec_hook=dec_hook)


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint atomically."""
    write_atomically(path, msgspec.json.encode(checkpoint))


def read_checkpoint(path: Path) -> Checkpoint:
    """Load a checkpoint of any format version; `ResultsFormatError` if it is not one."""
    return decode_versioned(
        path.read_bytes(), Checkpoint, FORMAT_VERSION, CHECKPOINT_UPGRADES, str(path), "checkpoint"
    )


def write_run_end(
    paths: RunPaths,
    manifest: Manifest,
    statistics: RunStatistics,
    status: str,
    error: str,
    uncompressed_bytes: int,
) -> Manifest:
    """End a run that closed its files: `stats.json`, no live statistics, the final manifest.

    What the local writer and a cluster run's client both do last; returns the manifest.
    """
    write_atomically(paths.stats, msgspec.json.encode(statistics.state()))
    paths.live_stats.unlink(missing_ok=True)  # stats.json has it all now
    on_disk = paths.bytes_on_disk()
    final = msgspec.structs.replace(
        manifest,
        status=status,
        error=error,
        finished=datetime.datetime.now(datetime.UTC),
        totals=statistics.totals(),
        bytes_on_disk=on_disk,
        uncompressed_bytes=uncompressed_bytes,
        compression_ratio=uncompressed_bytes / on_disk if on_disk else 0.0,
    )
    write_manifest(paths.manifest, final)
    return final
