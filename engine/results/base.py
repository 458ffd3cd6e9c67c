"""The `SimulationResults` interface every results tier implements (DESIGN section 6).

Readers (CLI, dashboard, tests) use only this interface, so a run held in memory and a run
streamed to Parquet look the same. Tiers differ in where rows live, not in what they return.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from engine.errors import MemoryBudgetError
from engine.memory.guard import process_monitor

if TYPE_CHECKING:
    import pandas as pd

    from engine.model.any_protocol import AnyProtocol
    from engine.model.parameters import RunParameters
    from engine.stats.run_stats import RunStatistics
    from engine.totals import SummaryStats

__all__ = ["DEFAULT_BATCH_SIZE", "PatientRecord", "SimulationResults"]

DEFAULT_BATCH_SIZE = 65_536
# A pandas frame built from Arrow holds the values plus index and conversion temporaries.
DATAFRAME_BYTES_PER_ARROW_BYTE = 2.5
DATAFRAME_MEMORY_FRACTION = 0.5

TableName = Literal["patients", "visits"]


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """One patient: the patients-table row as a dict and their visits in visit order."""

    patient: dict[str, Any]
    visits: pa.Table


class SimulationResults(abc.ABC):
    """Read access to a run's patients and visits, its protocol, parameters and summary.

    Use as a context manager or call `close()`; closing twice is harmless.
    """

    storage: Literal["memory", "parquet"]

    @property
    @abc.abstractmethod
    def protocol(self) -> AnyProtocol:
        """The validated protocol the run used."""

    @property
    @abc.abstractmethod
    def parameters(self) -> RunParameters:
        """Cohort size, horizon, seed, sharding and recruitment of the run."""

    @property
    @abc.abstractmethod
    def patient_count(self) -> int:
        """Rows in the patients table."""

    @property
    @abc.abstractmethod
    def visit_count(self) -> int:
        """Rows in the visits table."""

    @property
    @abc.abstractmethod
    def memory_usage_mb(self) -> float:
        """Memory this object holds for results data, in MiB."""

    @abc.abstractmethod
    def summary_stats(self) -> SummaryStats:
        """Headline outcomes, from stored statistics: never a scan of the rows."""

    @abc.abstractmethod
    def statistics(self) -> RunStatistics:
        """The run's distributions, VA by month and workload, from stored statistics."""

    @abc.abstractmethod
    def iterate_patients(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Patients rows in id order, at most `batch_size` rows per batch."""

    @abc.abstractmethod
    def iterate_visits(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
        """Visits rows in (patient_id, visit) order, at most `batch_size` rows per batch."""

    @abc.abstractmethod
    def get_patient(self, patient_id: int) -> PatientRecord:
        """One patient and their visits; `KeyError` if the id is not in the run."""

    @abc.abstractmethod
    def get_patient_range(self, start: int, end: int) -> tuple[pa.Table, pa.Table]:
        """Patients with ids in ``[start, end)`` and their visits, as (patients, visits)."""

    @abc.abstractmethod
    def _arrow_table(self, table: TableName) -> pa.Table:
        """The whole table in Arrow; only called once the memory check has passed."""

    @abc.abstractmethod
    def _table_nbytes(self, table: TableName) -> int:
        """Bytes the table takes in Arrow form (uncompressed)."""

    def to_dataframe(
        self, table: TableName = "visits", max_bytes: int | None = None
    ) -> pd.DataFrame:
        """The whole `table` as a pandas DataFrame.

        Raises `MemoryBudgetError` instead of allocating when the frame would take more
        than `max_bytes`, by default half of the memory this process tree may still use
        under the real limit (RAM, cgroup or rlimit: `engine.memory.limits`), so that a
        container's limit is respected and not only the host's free memory.
        """
        if table not in ("patients", "visits"):
            raise ValueError(f"table must be 'patients' or 'visits', got {table!r}")
        estimate = int(self._table_nbytes(table) * DATAFRAME_BYTES_PER_ARROW_BYTE)
        source = ""
        if max_bytes is None:
            monitor = process_monitor()
            budget = int(monitor.headroom_bytes() * DATAFRAME_MEMORY_FRACTION)
            source = f" (half of what is left under the {monitor.limit.describe()} limit)"
        else:
            budget = max_bytes
        if estimate > budget:
            raise MemoryBudgetError(
                f"the {table} table as a DataFrame needs about {estimate / 2**20:,.0f} MiB, "
                f"more than the {budget / 2**20:,.0f} MiB budget{source}; "
                f"read it in batches with iterate_{table}() or select patients with "
                "get_patient_range()"
            )
        return self._arrow_table(table).to_pandas()

    def close(self) -> None:  # noqa: B027 - tiers without resources have nothing to release
        """Release files and memory; idempotent."""

    def __enter__(self) -> SimulationResults:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_patient_id(self, patient_id: int) -> int:
        if not 0 <= patient_id < self.patient_count:
            raise KeyError(
                f"patient {patient_id} is not in this run (ids 0..{self.patient_count - 1})"
            )
        return int(patient_id)
