"""Reading a run's results through one interface, whatever tier holds them (DESIGN section 6)."""

from engine.results.base import PatientRecord, SimulationResults
from engine.results.memory import InMemoryResults

__all__ = ["InMemoryResults", "PatientRecord", "SimulationResults"]
