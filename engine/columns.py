"""The patients and visits tables: column types in numpy and Arrow, and the conversion between.

The kernel produces plain numpy arrays (cheap to build, to ship between processes as raw bytes
and to concatenate); Arrow record batches are made at the edge, for Parquet and for readers.
Nullable integer columns carry ``-1`` in numpy and become nulls in Arrow; state and reason
columns are int8 codes in numpy and dictionary-encoded strings in Arrow. (DESIGN section 5.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from engine.states import DISCONTINUATION_REASON_NAMES, STATE_NAMES

__all__ = [
    "PATIENTS_SCHEMA",
    "PATIENT_COLUMNS",
    "VISITS_SCHEMA",
    "VISIT_COLUMNS",
    "ColumnSpec",
    "Columns",
    "ShardOutput",
    "to_record_batch",
]

Columns = dict[str, np.ndarray]
NULL = -1


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column: numpy dtype in the kernel, Arrow type on disk, and how nulls are coded."""

    name: str
    dtype: np.dtype
    nullable: bool = False
    dictionary: tuple[str, ...] | None = None
    arrow_type: pa.DataType = field(init=False)

    def __post_init__(self) -> None:
        value_type = pa.from_numpy_dtype(self.dtype)
        if self.dictionary is not None:
            value_type = pa.dictionary(value_type, pa.string())
        object.__setattr__(self, "arrow_type", value_type)

    def to_arrow(self, values: np.ndarray) -> pa.Array:
        """Arrow array of `values`; `-1` becomes null in nullable columns."""
        mask = values == NULL if self.nullable else None
        if self.dictionary is None:
            return pa.array(values, type=self.arrow_type, mask=mask)
        indices = pa.array(values, type=self.arrow_type.index_type, mask=mask)
        return pa.DictionaryArray.from_arrays(indices, _dictionary(self.dictionary))


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
    _col("discontinuation_reason", np.int8, nullable=True, dictionary=DISCONTINUATION_REASON_NAMES),
)

VISIT_COLUMNS: tuple[ColumnSpec, ...] = (
    _col("patient_id", np.int32),
    _col("visit", np.int16),
    _col("day", np.int32),
    _col("vision", np.int16),
    _col("injected", np.bool_),
    _col("disease_state", np.int8, dictionary=STATE_NAMES),
    _col("interval_days", np.int16, nullable=True),
)

PATIENTS_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in PATIENT_COLUMNS])
VISITS_SCHEMA = pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in VISIT_COLUMNS])

_DICTIONARIES: dict[tuple[str, ...], pa.Array] = {}


def _dictionary(names: tuple[str, ...]) -> pa.Array:
    if names not in _DICTIONARIES:
        _DICTIONARIES[names] = pa.array(names, type=pa.string())
    return _DICTIONARIES[names]


def to_record_batch(
    columns: Mapping[str, np.ndarray], specs: tuple[ColumnSpec, ...]
) -> pa.RecordBatch:
    """Arrow record batch of `columns`, in the order and types of `specs`."""
    schema = pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in specs])
    return pa.RecordBatch.from_arrays([c.to_arrow(columns[c.name]) for c in specs], schema=schema)


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
    def nbytes(self) -> int:
        """Bytes held by the numpy columns."""
        return sum(a.nbytes for a in self.patients.values()) + sum(
            a.nbytes for a in self.visits.values()
        )

    def patients_batch(self) -> pa.RecordBatch:
        """The patients rows as an Arrow record batch."""
        return to_record_batch(self.patients, PATIENT_COLUMNS)

    def visits_batch(self) -> pa.RecordBatch:
        """The visits rows as an Arrow record batch."""
        return to_record_batch(self.visits, VISIT_COLUMNS)
