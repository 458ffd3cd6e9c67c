"""A run's rows and outcome table as downloadable files, produced piece by piece.

Patients and visits go out as CSV or as one Parquet file, built from
`SimulationResults.iterate_patients / iterate_visits` batch by batch: each batch is encoded
and handed over as bytes before the next is read, so exporting 100 million visits needs the
memory of one batch, whatever the run's size or tier (in memory or Parquet on disk). The
outcome table goes out as CSV, one row per month and view, in the units a clinician reads
(letters, per cent of patients). The dashboard streams these (`viz.downloads`); anything that
can write bytes can use them.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterator
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.results.base import SimulationResults
from engine.stats.outcome_table import OutcomeTable

__all__ = ["EXPORT_BATCH_ROWS", "FORMATS", "TABLES", "outcome_table_csv", "table_chunks"]

Table = Literal["patients", "visits"]
Format = Literal["csv", "parquet"]
TABLES: tuple[Table, ...] = ("patients", "visits")
FORMATS: tuple[Format, ...] = ("csv", "parquet")
EXPORT_BATCH_ROWS = 65_536  # rows per piece: a few MiB of memory, a row group per piece


class _Drain(io.RawIOBase):
    """A write-only file whose written bytes are taken out after each write."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._pending += data
        return len(data)

    def take(self) -> bytes:
        taken, self._pending = bytes(self._pending), bytearray()
        return taken


def table_chunks(
    results: SimulationResults,
    table: Table,
    fmt: Format,
    batch_rows: int = EXPORT_BATCH_ROWS,
) -> Iterator[bytes]:
    """The `table` of `results` as a `fmt` file, in pieces of about `batch_rows` rows.

    Concatenated, the pieces are one valid file: CSV with one header line, or Parquet with
    one row group per piece. A run with no rows gives a header (CSV) or an empty file with
    its schema (Parquet).
    """
    if table not in TABLES:
        raise ValueError(f"no table {table!r}: choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise ValueError(f"no format {fmt!r}: choose one of {', '.join(FORMATS)}")
    batches = (
        results.iterate_patients(batch_rows)
        if table == "patients"
        else results.iterate_visits(batch_rows)
    )
    if fmt == "csv":
        yield from _csv_chunks(batches)
    else:
        yield from _parquet_chunks(batches, _schema_of(results, table))


def _schema_of(results: SimulationResults, table: Table) -> pa.Schema:
    """The table's schema, from an empty range of patients (a run may have no rows)."""
    patients, visits = results.get_patient_range(0, 0)
    return patients.schema if table == "patients" else visits.schema


def _csv_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    header = True
    for batch in batches:
        sink = io.BytesIO()
        pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=header))
        header = False
        yield sink.getvalue()
    if header:  # no rows: nothing said what the columns are
        yield b""


def _parquet_chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    first = next(batches, None)  # the rows' own schema, if there are rows
    drain = _Drain()
    with pq.ParquetWriter(drain, schema if first is None else first.schema) as writer:
        for batch in itertools.chain([] if first is None else [first], batches):
            writer.write_batch(batch)
            piece = drain.take()
            if piece:
                yield piece
    yield drain.take()  # the footer


def outcome_table_csv(table: OutcomeTable | None) -> str:
    """The outcome table as CSV; a run without one (the visit-based model) gives a header
    and a line that says so."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "month",
            "view",
            "patients",
            "mean_change_letters",
            "ci95_low_letters",
            "ci95_high_letters",
            "sd_letters",
            "gained_15_or_more_percent",
            "lost_fewer_than_15_percent",
            "lost_15_or_more_percent",
            "at_least_70_letters_percent",
        ]
    )
    if table is None:
        writer.writerow(["not available: this run's model records no outcome table"])
        return out.getvalue()
    views = {"locf": "trial (LOCF, all patients)", "observed": "registry (observed)"}
    for row in table.rows:
        writer.writerow(
            [
                row.month,
                views.get(row.kind, row.kind),
                row.patients,
                _number(row.mean_change),
                _number(row.ci_low),
                _number(row.ci_high),
                _number(row.sd),
                _number(100 * row.gain_15),
                _number(100 * row.lose_lt_15),
                _number(100 * row.lose_15),
                _number(100 * row.at_least_70),
            ]
        )
    return out.getvalue()


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2f}"
