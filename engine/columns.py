"""The patients and visits tables: column types in numpy and Arrow, and the conversion between.

The kernel produces plain numpy arrays (cheap to build, to ship between processes as raw bytes
and to concatenate); Arrow record batches are made at the edge, for Parquet and for readers.
Nullable integer columns carry ``-1`` in numpy and become nulls in Arrow; state and reason
columns are int8 codes in numpy and dictionary-encoded strings in Arrow. (DESIGN section 5.)

pyarrow is imported on first use of anything Arrow: worker processes only build Arrow-layout
buffers with numpy, and not loading pyarrow saves each of them about 26 MiB.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.model.states import (
    DISCONTINUATION_REASON_NAMES,
    SEX_NAMES,
    STATE_NAMES,
    V2_REASON_NAMES,
    VISIT_LAYOUT_REASON_NAMES,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [  # noqa: F822 - the two schemas are module attributes built on first use
    "PATIENTS_SCHEMA",
    "PATIENT_COLUMNS",
    "PATIENT_COLUMNS_V2",
    "REASON_NAMES",
    "V2_MONTHS",
    "VISITS_SCHEMA",
    "VISIT_COLUMNS",
    "ColumnSpec",
    "Columns",
    "ShardOutput",
    "format_of_patients",
    "numpy_view",
    "patient_columns",
    "patients_schema",
    "schema_of",
    "to_record_batch",
]

Columns = dict[str, np.ndarray]
Buffer = np.ndarray | memoryview | bytes
NULL = -1


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column: numpy dtype in the kernel, Arrow type on disk, and how nulls are coded."""

    name: str
    dtype: np.dtype
    nullable: bool = False
    dictionary: tuple[str, ...] | None = None
    # A dictionary that extends `dictionary` (same first names), used for a batch holding a
    # code beyond it: the current visit-based layout's extra reasons. Older runs never hold
    # such codes, so their files keep exactly `dictionary`.
    wider_dictionary: tuple[str, ...] | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        """The column's Arrow type (dictionary<int8, string> for coded columns)."""
        return _arrow_type(self.dtype, self.dictionary is not None)

    def to_buffers(self, values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray | None]:
        """Arrow-layout buffers of `values`: (null count, values, validity bitmap or None).

        Numeric values are shared with numpy, not copied; booleans and validity are packed
        into bits. `-1` marks a null in nullable columns.
        """
        validity = None
        null_count = 0
        if self.nullable:
            valid = values != NULL
            null_count = len(values) - int(np.count_nonzero(valid))
            if null_count:
                validity = np.packbits(valid, bitorder="little")
        if values.dtype == np.bool_:
            data = np.packbits(values, bitorder="little")
        else:
            data = np.ascontiguousarray(values, dtype=self.dtype)
        return null_count, data, validity

    def from_buffers(
        self, length: int, null_count: int, data: Buffer, validity: Buffer | None
    ) -> pa.Array:
        """The Arrow array over `data` and `validity` (any buffer-protocol objects, not copied)."""
        import pyarrow as pa  # noqa: PLC0415 - see the module docstring

        storage_type = self.arrow_type if self.dictionary is None else self.arrow_type.index_type
        buffers = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(data)]
        array = pa.Array.from_buffers(storage_type, length, buffers, null_count=null_count)
        if self.dictionary is None:
            return array
        names = self.dictionary
        if self.wider_dictionary is not None and length:
            codes = np.frombuffer(data, dtype=self.dtype, count=length)
            if int(codes.max()) >= len(names):
                names = self.wider_dictionary
        return pa.DictionaryArray.from_arrays(array, _dictionary(names))

    def to_arrow(self, values: np.ndarray) -> pa.Array:
        """Arrow array of `values`; `-1` becomes null in nullable columns.

        Built from buffers: numeric data is shared with numpy, and `pa.array` is avoided
        because its first call imports pandas (0.4 s in every process).
        """
        null_count, data, validity = self.to_buffers(values)
        return self.from_buffers(len(values), null_count, data, validity)


def _col(name: str, dtype: type, **kwargs: object) -> ColumnSpec:
    return ColumnSpec(name, np.dtype(dtype), **kwargs)  # type: ignore[arg-type]


PATIENT_COLUMNS: tuple[ColumnSpec, ...] = (
    _col("patient_id", np.int32),
    _col("enrollment_day", np.int32),
    _col("baseline_vision", np.int16),
    _col("final_vision", np.int16),
    _col("final_state", np.int8, dictionary=STATE_NAMES),
    _col("injections", np.int32),
    _col("visits", np.int32),
    _col("discontinued", np.bool_),
    _col("discontinuation_day", np.int32, nullable=True),
    _col(
        "discontinuation_reason",
        np.int8,
        nullable=True,
        dictionary=DISCONTINUATION_REASON_NAMES,
        wider_dictionary=VISIT_LAYOUT_REASON_NAMES,
    ),
)

# Format 2 (the time-based model, contracts in docs/model.md 6): v1's columns with the
# extended reasons, then demographics, the outcome-table milestones and per-year counts.
V2_MONTHS: tuple[int, ...] = (3, 6, 12, 24, 36, 60)  # outcome-table milestones, months
PATIENT_COLUMNS_V2: tuple[ColumnSpec, ...] = (
    *PATIENT_COLUMNS[:-1],
    _col("discontinuation_reason", np.int8, nullable=True, dictionary=V2_REASON_NAMES),
    _col("age", np.float32),  # years at enrolment
    _col("sex", np.int8, dictionary=SEX_NAMES),
    _col("responder", np.bool_),
    _col("death_day", np.int32, nullable=True),  # simulation day; null: alive at the horizon
    # Last measured VA at or before enrolment + m months (null: beyond the horizon).
    *(_col(f"va_m{m}", np.int16, nullable=True) for m in V2_MONTHS),
    # Alive and not discontinued on that day.
    *(_col(f"treated_m{m}", np.bool_) for m in V2_MONTHS),
    *(
        _col(f"{what}_{period}", np.int32)
        for what in ("injections", "visits")
        for period in ("y1", "y2", "later")
    ),
    _col("alive_days", np.int32),  # enrolment to death or horizon
    _col("treated_days", np.int32),  # enrolment to discontinuation, death or horizon
)

# The one mapping from run-directory format to its patients table and reason names; every
# reader and writer goes through `patient_columns` (visits are the same in both formats).
_PATIENT_COLUMNS_BY_FORMAT: dict[int, tuple[ColumnSpec, ...]] = {
    1: PATIENT_COLUMNS,
    2: PATIENT_COLUMNS_V2,
}
REASON_NAMES: dict[int, tuple[str, ...]] = {1: DISCONTINUATION_REASON_NAMES, 2: V2_REASON_NAMES}
_FORMAT_BY_NAMES = {
    tuple(c.name for c in specs): version for version, specs in _PATIENT_COLUMNS_BY_FORMAT.items()
}


def patient_columns(format_version: int) -> tuple[ColumnSpec, ...]:
    """The patients table's columns in run-directory format `format_version`."""
    try:
        return _PATIENT_COLUMNS_BY_FORMAT[format_version]
    except KeyError:
        raise ValueError(f"no patients table is defined for format {format_version}") from None


def format_of_patients(names: Iterable[str]) -> int:
    """The format whose patients table has exactly these column names (in any order)."""
    wanted = set(names)
    for columns, version in _FORMAT_BY_NAMES.items():
        if set(columns) == wanted:
            return version
    raise ValueError(f"no format has the patients columns {sorted(wanted)}")


def patients_schema(format_version: int) -> pa.Schema:
    """The Arrow schema of the patients table in `format_version`."""
    return _patients_schema(format_version)


@functools.cache
def _patients_schema(format_version: int) -> pa.Schema:
    return schema_of(patient_columns(format_version))


VISIT_COLUMNS: tuple[ColumnSpec, ...] = (
    _col("patient_id", np.int32),
    _col("visit", np.int16),
    _col("day", np.int32),
    _col("vision", np.int16),
    _col("injected", np.bool_),
    _col("disease_state", np.int8, dictionary=STATE_NAMES),
    _col("interval_days", np.int16, nullable=True),
)


def schema_of(specs: tuple[ColumnSpec, ...]) -> pa.Schema:
    """The Arrow schema of a table given its column specs."""
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in specs])


def __getattr__(name: str) -> Any:
    # PATIENTS_SCHEMA and VISITS_SCHEMA are built (and pyarrow loaded) on first use.
    if name == "PATIENTS_SCHEMA":
        return _schema("patients")
    if name == "VISITS_SCHEMA":
        return _schema("visits")
    raise AttributeError(f"module 'engine.columns' has no attribute {name!r}")


@functools.cache
def _schema(table: str) -> pa.Schema:
    return schema_of(PATIENT_COLUMNS if table == "patients" else VISIT_COLUMNS)


@functools.cache
def _arrow_type(dtype: np.dtype, dictionary: bool) -> pa.DataType:
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    value_type = pa.from_numpy_dtype(dtype)
    return pa.dictionary(value_type, pa.string()) if dictionary else value_type


@functools.cache
def _dictionary(names: tuple[str, ...]) -> pa.Array:
    """The string array of a dictionary column, built from buffers (see `to_arrow`)."""
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    encoded = [name.encode() for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(names), buffers)


def to_record_batch(
    columns: Mapping[str, np.ndarray], specs: tuple[ColumnSpec, ...]
) -> pa.RecordBatch:
    """Arrow record batch of `columns`, in the order and types of `specs`."""
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    return pa.RecordBatch.from_arrays(
        [c.to_arrow(columns[c.name]) for c in specs], schema=schema_of(specs)
    )


def numpy_view(column: pa.Array | pa.ChunkedArray, dtype: np.dtype | type) -> np.ndarray:
    """The values of a null-free primitive column as numpy, without importing pandas.

    Zero-copy for a single chunk (pyarrow's own `to_numpy` imports pandas on first use).
    """
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    dtype = np.dtype(dtype)
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError("numpy_view needs a column without nulls")
        data = chunk.buffers()[1]
        parts.append(
            np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        )
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


@dataclass(frozen=True, slots=True, eq=False)
class ShardOutput:
    """Everything one shard produced: its patients rows and its visits rows, as numpy columns.

    Visits are sorted by (patient_id, visit); patients by patient_id.
    """

    shard_index: int
    patients: Columns
    visits: Columns

    @property
    def patient_count(self) -> int:
        """Rows in the patients table."""
        return len(self.patients["patient_id"])

    @property
    def visit_count(self) -> int:
        """Rows in the visits table."""
        return len(self.visits["patient_id"])

    @property
    def format_version(self) -> int:
        """The run-directory format of these patients columns (`format_of_patients`)."""
        return format_of_patients(self.patients)

    @property
    def patient_columns(self) -> tuple[ColumnSpec, ...]:
        """The specs of this output's patients table."""
        return patient_columns(self.format_version)

    @property
    def nbytes(self) -> int:
        """Bytes held by the numpy columns."""
        return sum(a.nbytes for a in self.patients.values()) + sum(
            a.nbytes for a in self.visits.values()
        )

    def patients_batch(self) -> pa.RecordBatch:
        """The patients rows as an Arrow record batch."""
        return to_record_batch(self.patients, self.patient_columns)

    def visits_batch(self) -> pa.RecordBatch:
        """The visits rows as an Arrow record batch."""
        return to_record_batch(self.visits, VISIT_COLUMNS)
