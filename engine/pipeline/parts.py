"""Rolling Parquet part files: one row group per shard part, both tables in step.

Part file ``n`` of ``patients/`` and of ``visits/`` hold the same shard parts in the same row
group order. Files are written under hidden temporary names and renamed when closed, so a
directory only ever shows finished files; a crash leaves hidden temporaries that no reader
picks up. Encodings were measured column by column (perf/bench_parquet.py): plain where
zstd does the work cheaply, delta for vision (2x faster than plain and smaller), dictionary
only for the state columns, statistics only on patient_id (for readers pruning row groups).

Integrity: every page carries a CRC checksum (readers verify it, so a flipped byte is an
error, never a wrong value), and every file's key-value metadata names its run
(``amdsim.run_id``), its table and where each of its shard parts is (``amdsim.locations``,
the checkpoint's entries for this file), so a file copied from another run is refused and a
lost checkpoint can be rebuilt (engine.integrity). Closed files are flushed to disk before
they are renamed and their directory after (engine.durable): a power cut cannot leave a
listed file that is incomplete.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from engine.columns import numpy_view
from engine.durable import fsync_directory, fsync_path
from engine.manifest import ROW_GROUP_PATIENTS, Compression, Manifest, PartFile, ShardLocation
from engine.pipeline.batches import DecodedBatch
from engine.run_dir import RunPaths, temporary_name
from engine.stats.shard_stats import Counts

__all__ = [
    "PARQUET_OPTIONS",
    "DiskBudget",
    "FailingFile",
    "PartFiles",
    "encode_file_stats",
    "part_file_metadata",
]

_COMPRESSION = {"zstd": "zstd", "snappy": "snappy", "gzip": "gzip", "none": "none"}
PARQUET_OPTIONS: dict[str, dict[str, object]] = {
    "patients": {
        "use_dictionary": ["final_state", "discontinuation_reason"],
        "write_statistics": ["patient_id"],
    },
    "visits": {
        "use_dictionary": ["disease_state"],
        "column_encoding": {"vision": "DELTA_BINARY_PACKED"},
        "write_statistics": ["patient_id"],
    },
}


def part_file_metadata(manifest: Manifest) -> dict[str, str]:
    """Key-value metadata every part file of the run carries: its format, run, protocol and
    parameters (so a file copied from another run is refused)."""
    return {
        "amdsim.format_version": str(manifest.format_version),
        "amdsim.run_id": manifest.run_id,
        "amdsim.protocol": msgspec.json.encode(manifest.protocol).decode(),
        "amdsim.parameters": msgspec.json.encode(manifest.parameters).decode(),
    }


def encode_file_stats(counts: Counts) -> str:
    """The counts of a part file's rows, for its metadata: msgpack, zstd, base64 (a few kB)."""
    packed = zstandard.ZstdCompressor(level=3).compress(msgspec.msgpack.encode(counts.state()))
    return base64.b64encode(packed).decode()


class DiskBudget:
    """Bytes left on a pretend disk shared by every `FailingFile` of a run."""

    def __init__(self, limit_bytes: int) -> None:
        self.left = limit_bytes
        self.lock = threading.Lock()


class FailingFile:
    """A file that raises ENOSPC once the shared budget is used up: disk-full in tests."""

    def __init__(self, path: Path, budget: DiskBudget) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._budget = budget

    def write(self, data: bytes) -> int:
        """Write, or fail like a full disk when the budget is used up."""
        with self._budget.lock:
            if len(data) > self._budget.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._budget.left -= len(data)
        return self._file.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


class PartFiles:
    """Writes shard parts into the current pair of part files, rolling to a new pair by size."""

    def __init__(
        self,
        paths: RunPaths,
        compression: Compression,
        roll_bytes: int,
        metadata: dict[str, str],
        first_number: int = 0,
        number_step: int = 1,
        disk: DiskBudget | None = None,
        row_group_patients: int = ROW_GROUP_PATIENTS,
    ) -> None:
        """Write part files numbered `first_number`, `first_number + number_step`, ...

        Several `PartFiles` write side by side (one per writer lane) with interleaved numbers.
        `disk` simulates a disk of limited size, for tests.
        """
        self.paths = paths
        self.compression = compression
        self.roll_bytes = roll_bytes
        self.metadata = metadata
        self.number = first_number
        self.number_step = number_step
        self.row_group_patients = row_group_patients
        self.closed_bytes = 0
        self._disk = disk
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._sinks: dict[str, object] = {}
        self._row_groups = 0  # in the open patients file: one per shard part
        self._visit_row_groups = 0  # in the open visits file
        self._locations: list[ShardLocation] = []
        for table in ("patients", "visits"):
            paths.table_dir(table).mkdir(parents=True, exist_ok=True)

    @property
    def bytes_written(self) -> int:
        """Bytes in closed part files plus those written so far to the open pair."""
        return self.closed_bytes + sum(_tell(sink) for sink in self._sinks.values())

    def write(self, decoded: DecodedBatch) -> ShardLocation:
        """Append the batch: one patients row group, visits in row groups of whole patients.

        Only visits are cut (they are ~20 times the rows): a lookup reads a small visits row
        group, and the patients footer stays small (footers stay in memory while files are
        open, ~1 kB per column chunk).
        """
        if not self._writers:
            self._open(decoded)
        patients, visits = decoded.patients, decoded.visits
        size = self.row_group_patients
        self._writers["patients"].write_batch(patients)
        if patients.num_rows <= size:
            self._writers["visits"].write_batch(visits)
            visit_row_groups = 1
        else:
            counts = numpy_view(patients.column("visits"), "int32")
            starts = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
            visit_row_groups = 0
            for first in range(0, patients.num_rows, size):
                last = min(first + size, patients.num_rows)
                begin, end = int(starts[first]), int(starts[last])
                self._writers["visits"].write_batch(visits.slice(begin, end - begin))
                visit_row_groups += 1
        batch = decoded.batch
        location = ShardLocation(
            shard=batch.shard,
            part=batch.part,
            part_count=batch.part_count,
            file=self.number,
            patients_row_group=self._row_groups,
            visits_row_group=self._visit_row_groups,
            first_patient=batch.first_patient,
            patients=batch.patients.length,
            visits=batch.visits.length,
            row_group_patients=size if visit_row_groups > 1 else 0,
        )
        self._row_groups += 1
        self._visit_row_groups += visit_row_groups
        self._locations.append(location)
        return location

    def should_roll(self) -> bool:
        """True once the open pair has reached the roll size."""
        return bool(self._sinks) and sum(_tell(s) for s in self._sinks.values()) >= self.roll_bytes

    def roll(self, extra_metadata: dict[str, dict[str, str]] | None = None) -> PartFile | None:
        """Close the open pair and rename it into place; None if nothing was open.

        `extra_metadata` maps a table to more key-value metadata for its file (statistics).

        Both files are finished (footers written, closed) and flushed to disk before either
        is renamed, so a failure part-way (a full disk) never leaves one table's file without
        its partner, and a power cut never leaves a renamed file whose data is not on disk.
        """
        if not self._writers:
            return None
        locations = msgspec.json.encode(self._locations).decode()
        shard_parts = json.dumps([[loc.shard, loc.part] for loc in self._locations])
        for table, writer in self._writers.items():
            writer.add_key_value_metadata(
                {
                    **self.metadata,
                    **(extra_metadata or {}).get(table, {}),
                    "amdsim.table": table,
                    "amdsim.shard_parts": shard_parts,
                    "amdsim.locations": locations,
                }
            )
            writer.close()
            self._sinks[table].close()
        self._writers.clear()
        finals = {table: self.paths.part_file(table, self.number) for table in self._sinks}
        for final in finals.values():
            fsync_path(temporary_name(final))
        sizes = {}
        for table, final in finals.items():
            os.replace(temporary_name(final), final)
            sizes[table] = final.stat().st_size
        for final in finals.values():
            fsync_directory(final.parent)
        part = PartFile(
            number=self.number,
            patients_file=self.paths.part_file("patients", self.number).name,
            visits_file=self.paths.part_file("visits", self.number).name,
            row_groups=self._row_groups,
            patients_bytes=sizes["patients"],
            visits_bytes=sizes["visits"],
        )
        self.closed_bytes += sizes["patients"] + sizes["visits"]
        self._sinks.clear()
        self._row_groups = 0
        self._visit_row_groups = 0
        self._locations = []
        self.number += self.number_step
        return part

    def abort(self) -> None:
        """Drop the open pair: close what can be closed and delete the temporaries."""
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # its footer may not fit either; no matter
                writer.close()
        for sink in self._sinks.values():
            with contextlib.suppress(Exception):
                sink.close()
        for table in ("patients", "visits"):
            with contextlib.suppress(FileNotFoundError):
                temporary_name(self.paths.part_file(table, self.number)).unlink()
        self._writers.clear()
        self._sinks.clear()

    def _open(self, decoded: DecodedBatch) -> None:
        for table, schema in (
            ("patients", decoded.patients.schema),
            ("visits", decoded.visits.schema),
        ):
            path = temporary_name(self.paths.part_file(table, self.number))
            if self._disk is not None:
                sink: object = FailingFile(path, self._disk)
            else:
                sink = pa.OSFile(str(path), "wb")
            self._sinks[table] = sink
            self._writers[table] = pq.ParquetWriter(
                sink,
                schema,
                compression=_COMPRESSION[self.compression],
                write_page_checksum=True,
                **PARQUET_OPTIONS[table],
            )


def _tell(sink: object) -> int:
    try:
        return int(sink.tell())  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return 0
