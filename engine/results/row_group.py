"""Rows a `ParquetResults` reader has decoded, and the Arrow helpers that slice and join them.

A `RowGroup` holds whole patients of one shard part with their visits and knows where each
patient's visits start, so a patient is two slices, copied out (`compact`) so that a cached
patient does not keep the whole row group alive.
Does not cover: reading them from disk (`engine.results.part_files`).
"""

from __future__ import annotations

import pyarrow as pa

from engine.columns import numpy_view
from engine.results.base import PatientRecord

__all__ = ["RowGroup", "combine", "compact", "concat"]


class RowGroup:
    """Rows read from disk (one row group or more, whole patients from `first_patient` on):
    their patients and visits, and where each patient's visits start."""

    __slots__ = ("first_patient", "patients", "starts", "visits")

    def __init__(self, first_patient: int, patients: pa.Table, visits: pa.Table) -> None:
        self.first_patient = first_patient
        self.patients = patients
        self.visits = visits
        counts = numpy_view(patients.column("visits"), "int32")
        self.starts = [0, *counts.cumsum().tolist()]

    def patient(self, patient_id: int) -> PatientRecord:
        """One patient of these rows, in buffers of its own."""
        row = patient_id - self.first_patient
        start, stop = self.starts[row], self.starts[row + 1]
        return PatientRecord(
            patient=self.patients.slice(row, 1).to_pylist()[0],
            visits=compact(self.visits.slice(start, stop - start)),
        )


def compact(table: pa.Table) -> pa.Table:
    """A copy of a slice in its own buffers: a cached patient must not keep a whole row group
    alive. (`concat_arrays` copies without importing pandas, unlike `take`.)"""
    columns = [pa.concat_arrays(column.chunks) for column in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)


def combine(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One record batch of `batches` (the batch itself if there is only one)."""
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """`tables` end to end; an empty table of `schema` if there are none."""
    return pa.concat_tables(tables) if tables else schema.empty_table()
