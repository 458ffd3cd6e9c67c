"""`InMemoryResults`: the first results tier, holding both tables as Arrow in this process.

For runs small enough to keep whole (the interactive case). Pickles for in-process session
state; saves to and loads from Parquet or Arrow IPC files (never pickle from disk, which would
run code on load).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import feather

from engine.columns import (
    VISITS_SCHEMA,
    ShardOutput,
    numpy_view,
    patients_schema,
)
from engine.durable import rename_durably
from engine.errors import ResultsFormatError, RunNotFoundError
from engine.formats import decode_versioned
from engine.memory.guard import check_memory_before
from engine.model.any_protocol import StoredProtocol, dec_hook
from engine.model.interface import AnyProtocol, format_version_of
from engine.model.parameters import RunParameters
from engine.results.base import DEFAULT_BATCH_SIZE, PatientRecord, SimulationResults, TableName
from engine.run_dir import write_atomically
from engine.stats.run_stats import RunStatistics, RunStatisticsState
from engine.totals import RunTotals, SummaryStats

__all__ = ["InMemoryResults", "SavedResultsHeader"]

# Format 2: results of the time-based model (its patients columns and protocol). Saved results
# are written in their model's format (`format_version_of`), so format 1 files are unchanged.
FORMAT_VERSION = 2
UPGRADES: dict = {1: lambda document: document}  # version n -> n + 1 (engine.formats)
HEADER_FILE = "results.json"
TableFormat = Literal["parquet", "arrow"]
_SUFFIX: dict[str, str] = {"parquet": ".parquet", "arrow": ".arrow"}


class SavedResultsHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What `results.json` holds beside the two table files of saved in-memory results."""

    format_version: int
    kind: Literal["in_memory_results"] = "in_memory_results"
    table_format: TableFormat
    created: datetime.datetime
    protocol: StoredProtocol  # either model's (engine.model.any_protocol)
    parameters: RunParameters
    stats: RunStatisticsState


class InMemoryResults(SimulationResults):
    """Both tables held as Arrow tables, with an index from patient id to visit rows."""

    storage: Literal["memory"] = "memory"

    def __init__(
        self,
        patients: pa.Table,
        visits: pa.Table,
        protocol: AnyProtocol,
        parameters: RunParameters,
        statistics: RunStatistics,
    ) -> None:
        self._patients = patients
        self._visits = visits
        self._protocol = protocol
        self._parameters = parameters
        self._statistics = statistics
        # Visits are sorted by patient, so each patient's rows start where the previous
        # patients' visit counts add up to.
        self._visit_start = np.zeros(patients.num_rows + 1, dtype=np.int64)
        np.cumsum(numpy_view(patients.column("visits"), np.int32), out=self._visit_start[1:])

    @classmethod
    def from_shards(
        cls,
        outputs: Sequence[ShardOutput],
        protocol: AnyProtocol,
        parameters: RunParameters,
        statistics: RunStatistics,
    ) -> InMemoryResults:
        """Assemble results from shard outputs (any order; they are sorted by shard)."""
        ordered = sorted(outputs, key=lambda o: o.shard_index)
        schema = patients_schema(format_version_of(protocol))
        patients = pa.Table.from_batches([o.patients_batch() for o in ordered], schema)
        visits = pa.Table.from_batches([o.visits_batch() for o in ordered], VISITS_SCHEMA)
        return cls(patients, visits, protocol, parameters, statistics)

    @property
    def protocol(self) -> AnyProtocol:
        """The validated protocol the run used."""
        return self._protocol

    @property
    def parameters(self) -> RunParameters:
        """Cohort size, horizon, seed, sharding and recruitment of the run."""
        return self._parameters

    @property
    def totals(self) -> RunTotals:
        """The exact totals the summary is derived from."""
        return self._statistics.totals()

    def statistics(self) -> RunStatistics:
        """Distributions, VA by month, workload: the run's statistics (no scan)."""
        return self._statistics

    @property
    def patient_count(self) -> int:
        """Rows in the patients table."""
        return self._patients.num_rows

    @property
    def visit_count(self) -> int:
        """Rows in the visits table."""
        return self._visits.num_rows

    @property
    def memory_usage_mb(self) -> float:
        """Arrow buffers held for both tables plus the patient index, in MiB."""
        return (self._patients.nbytes + self._visits.nbytes + self._visit_start.nbytes) / 2**20

    def summary_stats(self) -> SummaryStats:
        """Headline outcomes from the stored statistics."""
        return self.totals.summary()

    def iterate_patients(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Patients rows in id order, at most `batch_size` rows per batch."""
        yield from self._patients.to_batches(max_chunksize=_positive(batch_size))

    def iterate_visits(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Visits rows in (patient_id, visit) order, at most `batch_size` rows per batch."""
        yield from self._visits.to_batches(max_chunksize=_positive(batch_size))

    def get_patient(self, patient_id: int) -> PatientRecord:
        """One patient and their visits (ids are row numbers, so this is O(1))."""
        row = self._check_patient_id(patient_id)
        patient = self._patients.slice(row, 1).to_pylist()[0]
        start, stop = self._visit_start[row], self._visit_start[row + 1]
        return PatientRecord(patient=patient, visits=self._visits.slice(start, stop - start))

    def get_patient_range(self, start: int, end: int) -> tuple[pa.Table, pa.Table]:
        """Patients with ids in ``[start, end)`` (clamped to the run) and their visits."""
        start = max(0, min(int(start), self.patient_count))
        end = max(start, min(int(end), self.patient_count))
        first, last = self._visit_start[start], self._visit_start[end]
        return self._patients.slice(start, end - start), self._visits.slice(first, last - first)

    def _arrow_table(self, table: TableName) -> pa.Table:
        return self._patients if table == "patients" else self._visits

    def _table_nbytes(self, table: TableName) -> int:
        return self._arrow_table(table).nbytes

    def save(
        self, directory: str | os.PathLike[str], table_format: TableFormat = "parquet"
    ) -> Path:
        """Write both tables and `results.json` into `directory` (created if missing).

        Every file is written under a temporary name and renamed into place, header last,
        so a crash never leaves a directory that loads but is incomplete.
        """
        if table_format not in _SUFFIX:
            raise ValueError(f"table_format must be 'parquet' or 'arrow', got {table_format!r}")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = _SUFFIX[table_format]
        for name, table in (("patients", self._patients), ("visits", self._visits)):
            target = folder / f"{name}{suffix}"
            temporary = target.with_name(f".{target.name}.tmp")
            if table_format == "parquet":
                pq.write_table(table, temporary, compression="zstd")
            else:
                feather.write_feather(table, temporary, compression="zstd")
            rename_durably(temporary, target)  # flushed before the header names it
        header = SavedResultsHeader(
            format_version=format_version_of(self._protocol),
            table_format=table_format,
            created=datetime.datetime.now(datetime.UTC),
            protocol=self._protocol,
            parameters=self._parameters,
            stats=self._statistics.state(),
        )
        write_atomically(folder / HEADER_FILE, msgspec.json.format(msgspec.json.encode(header)))
        return folder

    @classmethod
    @check_memory_before(
        estimate=lambda cls, directory: _load_estimate(directory),
        operation="loading saved results into memory",
    )
    def load(cls, directory: str | os.PathLike[str]) -> InMemoryResults:
        """Read results written by `save`; raises a project error naming what is wrong."""
        folder = Path(directory)
        header_path = folder / HEADER_FILE
        if not header_path.is_file():
            raise RunNotFoundError(f"{folder} holds no saved results ({HEADER_FILE} is missing)")
        header = decode_versioned(
            header_path.read_bytes(),
            SavedResultsHeader,
            FORMAT_VERSION,
            UPGRADES,
            str(header_path),
            "results header",
            dec_hook=dec_hook,
        )
        suffix = _SUFFIX[header.table_format]
        tables = []
        patients = patients_schema(format_version_of(header.protocol))
        for name, schema in (("patients", patients), ("visits", VISITS_SCHEMA)):
            path = folder / f"{name}{suffix}"
            try:
                if header.table_format == "parquet":
                    table = pq.read_table(path)
                else:
                    table = feather.read_table(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise ResultsFormatError(f"{path} cannot be read: {exc}") from exc
            if not table.schema.equals(schema):
                raise ResultsFormatError(f"{path} does not have the {name} table's columns")
            tables.append(table)
        statistics = RunStatistics.from_state(header.stats)
        return cls(tables[0], tables[1], header.protocol, header.parameters, statistics)


def _positive(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


# Arrow holds saved tables at about this many times their size in the files (compressed
# Parquet columns expand 5-8x); what `load` is checked against before it reads anything.
LOAD_EXPANSION = 10


def _load_estimate(directory: str | os.PathLike[str]) -> int:
    """Bytes `load` will allocate: the saved files' size times `LOAD_EXPANSION`."""
    folder = Path(directory)
    files = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    return LOAD_EXPANSION * sum(p.stat().st_size for p in files)
