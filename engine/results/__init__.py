"""Reading a run's results through one interface, whatever tier holds them (DESIGN section 6)."""

from engine.results.base import PatientRecord, SimulationResults
from engine.results.factory import ResultsFactory
from engine.results.memory import InMemoryResults
from engine.results.parquet import CacheStatistics, ParquetResults

__all__ = [
    "CacheStatistics",
    "InMemoryResults",
    "ParquetResults",
    "PatientRecord",
    "ResultsFactory",
    "SimulationResults",
]
