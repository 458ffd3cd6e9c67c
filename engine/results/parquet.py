"""`ParquetResults`: a streamed run read lazily from its run directory, at any size.

Covers: the `SimulationResults` interface over part files, via `checkpoint.json` (where each
shard's rows are) and `stats.json` (statistics, so summaries never scan rows). One patient
is one row-group read per table (both read at once, on two threads: Arrow releases the GIL);
decoded patients sit in an LRU cache whose hits and misses are counted, and the last few
decoded row groups are kept because neighbouring patients share them. Iteration reads one
row group at a time in id order, so memory stays at one row group plus one batch.
Integrity (engine.integrity): a file is checked against the run (run id, shard parts, row
counts) when it is opened, every page's checksum is verified as it is read, and a damaged
row group raises `ResultsFormatError` naming the file and the row group, never wrong values.
A completed run whose checkpoint.json is lost is indexed from its part files' metadata.
Does not cover: writing (`engine.pipeline.writer`), choosing a tier (`engine.results.factory`).
See also: opening and reading part files (`engine.results.part_files`), decoded rows
(`engine.results.row_group`), the manifest and statistics (`engine.results.run_state`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import msgspec
import pyarrow as pa

from engine.columns import VISITS_SCHEMA, patients_schema
from engine.errors import ResultsFormatError
from engine.integrity import load_index, locations_by_file
from engine.manifest import Manifest, ShardLocation
from engine.model.interface import AnyProtocol, format_version_of
from engine.model.parameters import RunParameters
from engine.results.base import DEFAULT_BATCH_SIZE, PatientRecord, SimulationResults, TableName
from engine.results.part_files import PartFiles
from engine.results.row_group import RowGroup, combine, concat
from engine.results.run_state import read_run_manifest, read_run_statistics
from engine.run_dir import RunPaths
from engine.stats.run_stats import RunStatistics
from engine.totals import SummaryStats

__all__ = ["CacheStatistics", "ParquetResults"]

PATIENT_CACHE_SIZE = 1024
ROW_GROUP_CACHE_SIZE = 4


class CacheStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """How the patient cache has done: lookups served from memory and from disk."""

    hits: int
    misses: int
    size: int
    capacity: int

    @property
    def hit_rate(self) -> float:
        """Share of lookups served from the cache, 0..1 (0 before any lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class ParquetResults(SimulationResults):
    """Read access to a run directory written by the streaming pipeline."""

    storage: Literal["parquet"] = "parquet"

    def __init__(self, run_dir: str | Path, patient_cache_size: int = PATIENT_CACHE_SIZE) -> None:
        self.paths = RunPaths(Path(run_dir))
        self._manifest = read_run_manifest(self.paths)
        self._patients_schema = patients_schema(format_version_of(self._manifest.protocol))
        self._checkpoint = load_index(self.paths, self._manifest)
        self._statistics: RunStatistics | None = None
        self._locations = sorted(self._checkpoint.shards, key=lambda loc: loc.first_patient)
        self._by_shard: dict[int, list[ShardLocation]] = {}
        for location in self._locations:
            self._by_shard.setdefault(location.shard, []).append(location)
        self._parts = PartFiles(
            self.paths, self._manifest.run_id, locations_by_file(self._locations)
        )
        self._patients: OrderedDict[int, PatientRecord] = OrderedDict()
        self._row_groups: OrderedDict[tuple[int, int], RowGroup] = OrderedDict()
        self._cache_size = patient_cache_size
        self._hits = 0
        self._misses = 0
        self._reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="parquet-results")
        self._closed = False

    # -- what the run is ------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The run's manifest."""
        return self._manifest

    @property
    def protocol(self) -> AnyProtocol:
        """The validated protocol the run used."""
        return self._manifest.protocol

    @property
    def parameters(self) -> RunParameters:
        """Cohort size, horizon, seed, sharding and recruitment of the run."""
        return self._manifest.parameters

    @property
    def patient_count(self) -> int:
        """Patients on disk (all of them once the run completed)."""
        return sum(location.patients for location in self._locations)

    @property
    def visit_count(self) -> int:
        """Visits on disk."""
        return sum(location.visits for location in self._locations)

    @property
    def part_file_count(self) -> int:
        """Finished part files per table."""
        return len(self._checkpoint.parts)

    @property
    def bytes_on_disk(self) -> int:
        """Size of the part files holding the rows (both tables)."""
        return sum(part.patients_bytes + part.visits_bytes for part in self._checkpoint.parts)

    @property
    def uncompressed_bytes(self) -> int:
        """Size of the same rows as Arrow buffers in memory."""
        return self._checkpoint.uncompressed_bytes

    @property
    def memory_usage_mb(self) -> float:
        """Cached patients and row groups, in MiB (open file footers are small)."""
        groups = sum(g.patients.nbytes + g.visits.nbytes for g in self._row_groups.values())
        patients = sum(r.visits.nbytes for r in self._patients.values())
        return (groups + patients) / 2**20

    def cache_statistics(self) -> CacheStatistics:
        """Hits and misses of the patient cache."""
        return CacheStatistics(
            hits=self._hits,
            misses=self._misses,
            size=len(self._patients),
            capacity=self._cache_size,
        )

    def summary_stats(self) -> SummaryStats:
        """Headline outcomes from the stored statistics (never a scan)."""
        return self.statistics().totals().summary()

    def statistics(self) -> RunStatistics:
        """The run's statistics: stats.json once finished, else the checkpoint's."""
        if self._statistics is None:
            self._statistics = read_run_statistics(self.paths, self._manifest, self._checkpoint)
        return self._statistics

    # -- rows -----------------------------------------------------------------------------

    def get_patient(self, patient_id: int) -> PatientRecord:
        """One patient: a cache hit, or one row-group read per table."""
        patient_id = int(patient_id)
        cached = self._patients.get(patient_id)
        if cached is not None:
            self._patients.move_to_end(patient_id)
            self._hits += 1
            return cached
        self._misses += 1
        location = self._location_of(patient_id)
        record = self._row_group(location, location.row_group_of(patient_id)).patient(patient_id)
        self._patients[patient_id] = record
        if len(self._patients) > self._cache_size:
            self._patients.popitem(last=False)
        return record

    def get_patient_range(self, start: int, end: int) -> tuple[pa.Table, pa.Table]:
        """Patients with ids in ``[start, end)`` and their visits (reads the row groups holding them)."""
        start, end = max(0, int(start)), int(end)
        patients, visits = [], []
        for location in self._locations:
            last = location.first_patient + location.patients
            if last <= start or location.first_patient >= end:
                continue
            first = location.row_group_of(max(start, location.first_patient))
            group = self._read(location, first, location.row_group_of(min(end, last) - 1) + 1)
            lo = max(start, location.first_patient) - group.first_patient
            hi = min(end, last) - group.first_patient
            patients.append(group.patients.slice(lo, hi - lo))
            visits.append(group.visits.slice(group.starts[lo], group.starts[hi] - group.starts[lo]))
        return concat(patients, self._patients_schema), concat(visits, VISITS_SCHEMA)

    def iterate_patients(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Patients in id order, at most `batch_size` rows a batch, one row group in memory."""
        yield from self._iterate("patients", batch_size)

    def iterate_visits(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Visits in (patient_id, visit) order, at most `batch_size` rows a batch."""
        yield from self._iterate("visits", batch_size)

    def _arrow_table(self, table: TableName) -> pa.Table:
        schema = self._patients_schema if table == "patients" else VISITS_SCHEMA
        return pa.Table.from_batches(list(self._iterate(table, DEFAULT_BATCH_SIZE)), schema=schema)

    def _table_nbytes(self, table: TableName) -> int:
        """Uncompressed size from the files' footers (no data read)."""
        total = 0
        for part in self._checkpoint.parts:
            metadata = self._parts.get(table, part.number).metadata
            total += sum(
                metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
            )
        return total

    def close(self) -> None:
        """Close files and drop caches; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._reader.shutdown(wait=True)
        self._parts.close()
        self._patients.clear()
        self._row_groups.clear()

    # -- reading --------------------------------------------------------------------------

    def _location_of(self, patient_id: int) -> ShardLocation:
        if not 0 <= patient_id < self.parameters.n_patients:
            raise KeyError(
                f"patient {patient_id} is not in this run (ids 0..{self.parameters.n_patients - 1})"
            )
        shard = patient_id // self.parameters.shard_size
        for location in self._by_shard.get(shard, ()):
            if location.first_patient <= patient_id < location.first_patient + location.patients:
                return location
        raise KeyError(f"patient {patient_id} is not on disk (its shard has not been written)")

    def _row_group(self, location: ShardLocation, offset: int) -> RowGroup:
        key = (location.shard, location.part, offset)
        group = self._row_groups.get(key)
        if group is None:
            group = self._read(location, offset, offset + 1)
            self._row_groups[key] = group
            if len(self._row_groups) > ROW_GROUP_CACHE_SIZE:
                self._row_groups.popitem(last=False)
        else:
            self._row_groups.move_to_end(key)
        return group

    def _read(self, location: ShardLocation, first: int, stop: int) -> RowGroup:
        """The patients of visits row groups ``first .. stop - 1`` of the part (offsets from
        its first) and their visits; both tables are read at once."""
        if self._closed:
            raise ResultsFormatError(f"{self.paths.root}: these results are closed")
        visits = self._reader.submit(
            self._parts.read_table,
            "visits",
            location.file,
            [location.visits_row_group + offset for offset in range(first, stop)],
        )
        patients = self._parts.read_table("patients", location.file, [location.patients_row_group])
        size = location.row_group_patients
        if size:  # the part's patients are one row group: keep those of the visits read
            patients = patients.slice(first * size, (stop - first) * size)
        return RowGroup(location.first_patient + first * size, patients, visits.result())

    def _iterate(self, table: TableName, batch_size: int) -> Iterator[pa.RecordBatch]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        row_group_of = "patients_row_group" if table == "patients" else "visits_row_group"
        carried: list[pa.RecordBatch] = []
        carried_rows = 0

        def reads() -> Iterator[tuple[int, list[int]]]:
            for location in self._locations:
                if self._closed:
                    raise ResultsFormatError(f"{self.paths.root}: these results are closed")
                base = getattr(location, row_group_of)
                count = location.row_group_count if table == "visits" else 1
                yield location.file, list(range(base, base + count))

        for data in self._parts.read_in_order(table, reads()):
            for whole in data.to_batches():
                rest = whole
                while rest.num_rows:
                    take = min(batch_size - carried_rows, rest.num_rows)
                    carried.append(rest.slice(0, take))
                    carried_rows += take
                    rest = rest.slice(take)
                    if carried_rows == batch_size:
                        yield combine(carried)
                        carried, carried_rows = [], 0
            del data
        if carried:
            yield combine(carried)
