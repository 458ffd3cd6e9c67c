"""amdsim engine: the AMD treatment model, its runs and their results.

Public names are re-exported here and imported on first use (PEP 562), so that worker
processes importing one engine module do not pay for the whole package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AmdsimError": "engine.errors",
    "MemoryBudgetError": "engine.errors",
    "ParameterError": "engine.errors",
    "ProtocolError": "engine.errors",
    "ResultsFormatError": "engine.errors",
    "RunNotFoundError": "engine.errors",
    "RunStateError": "engine.errors",
    "WorkerCrashedError": "engine.errors",
    "WriterFailedError": "engine.errors",
    "Recruitment": "engine.model.parameters",
    "RunParameters": "engine.model.parameters",
    "Protocol": "engine.model.v1.protocol",
    "bundled_protocol_names": "engine.model.protocol_loader",
    "load_protocol": "engine.model.protocol_loader",
    "load_protocol_text": "engine.model.protocol_loader",
    "InMemoryResults": "engine.results",
    "ParquetResults": "engine.results",
    "ResultsFactory": "engine.results",
    "PatientRecord": "engine.results",
    "SimulationResults": "engine.results",
    "Registry": "engine.registry",
    "restart_run": "engine.pipeline.launch",
    "resume_run": "engine.pipeline.launch",
    "Progress": "engine.run_plan",
    "run_simulation": "engine.runner",
    "RunTotals": "engine.totals",
    "SummaryStats": "engine.totals",
}

__all__ = [
    "AmdsimError",
    "InMemoryResults",
    "MemoryBudgetError",
    "ParameterError",
    "ParquetResults",
    "PatientRecord",
    "Progress",
    "Protocol",
    "ProtocolError",
    "Recruitment",
    "Registry",
    "ResultsFactory",
    "ResultsFormatError",
    "RunNotFoundError",
    "RunParameters",
    "RunStateError",
    "RunTotals",
    "SimulationResults",
    "SummaryStats",
    "WorkerCrashedError",
    "WriterFailedError",
    "bundled_protocol_names",
    "load_protocol",
    "load_protocol_text",
    "restart_run",
    "resume_run",
    "run_simulation",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from engine.errors import (
        AmdsimError,
        MemoryBudgetError,
        ParameterError,
        ProtocolError,
        ResultsFormatError,
        RunNotFoundError,
        RunStateError,
        WorkerCrashedError,
        WriterFailedError,
    )
    from engine.model.parameters import Recruitment, RunParameters
    from engine.model.protocol_loader import (
        bundled_protocol_names,
        load_protocol,
        load_protocol_text,
    )
    from engine.model.v1.protocol import Protocol
    from engine.pipeline.launch import restart_run, resume_run
    from engine.registry import Registry
    from engine.results import (
        InMemoryResults,
        ParquetResults,
        PatientRecord,
        ResultsFactory,
        SimulationResults,
    )
    from engine.run_plan import Progress
    from engine.runner import run_simulation
    from engine.totals import RunTotals, SummaryStats
