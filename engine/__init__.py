"""amdsim engine: the AMD treatment model, its runs and their results.

Public names are re-exported here; modules are the place to look for the rest.
"""

from engine.errors import (
    AmdsimError,
    MemoryBudgetError,
    ParameterError,
    ProtocolError,
    ResultsFormatError,
    RunNotFoundError,
)
from engine.parameters import Recruitment, RunParameters
from engine.protocol import Protocol
from engine.protocol_loader import bundled_protocol_names, load_protocol, load_protocol_text
from engine.results import InMemoryResults, PatientRecord, SimulationResults
from engine.runner import Progress, run_simulation
from engine.totals import RunTotals, SummaryStats

__all__ = [
    "AmdsimError",
    "InMemoryResults",
    "MemoryBudgetError",
    "ParameterError",
    "PatientRecord",
    "Progress",
    "Protocol",
    "ProtocolError",
    "Recruitment",
    "ResultsFormatError",
    "RunNotFoundError",
    "RunParameters",
    "RunTotals",
    "SimulationResults",
    "SummaryStats",
    "bundled_protocol_names",
    "load_protocol",
    "load_protocol_text",
    "run_simulation",
]
