"""Run a simulation: `run_simulation` picks the tier; `run_in_memory` is the in-process one.

Runs small enough to hold in memory take the simple path, with no worker processes and no
files: blocks of shards are simulated one after another, reporting progress after each.
Larger runs stream to disk (`engine.pipeline`); `engine.run_plan` picks the tier.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from engine.model.any_protocol import AnyProtocol
from engine.model.interface import compile_model
from engine.model.parameters import (
    DEFAULT_SHARD_SIZE,
    Recruitment,
    RunParameters,
    validate_parameters,
)
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol, validate_protocol
from engine.model.shards import plan_blocks
from engine.model.v1.protocol import Protocol
from engine.model.v2.schema import TimeBasedProtocol
from engine.results.base import SimulationResults
from engine.results.memory import InMemoryResults
from engine.run_plan import Progress, results_tier
from engine.stats.run_stats import StatsAccumulator
from engine.stats.shard_stats import shard_stats

__all__ = ["Progress", "run_in_memory", "run_simulation"]


def run_simulation(
    protocol: AnyProtocol | str | os.PathLike[str] = DEFAULT_PROTOCOL,
    n_patients: int = 1000,
    years: float = 5.0,
    seed: int = 0,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    recruitment: Recruitment | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    in_memory: bool | None = None,
) -> SimulationResults:
    """Simulate `n_patients` for `years` under `protocol` (a struct, path or bundled name).

    Up to `MEMORY_THRESHOLD_PATIENTS` patients (or with ``in_memory=True``) the run stays in
    this process and returns `InMemoryResults`; larger runs stream into a new directory under
    `runs_dir` and return `ParquetResults`. Raises `ProtocolError` or `ParameterError` before
    simulating anything if an input is bad.
    """
    if isinstance(protocol, Protocol):
        protocol = validate_protocol(protocol)
    elif not isinstance(protocol, TimeBasedProtocol):  # a path or a bundled name
        protocol = load_protocol(protocol)
    params = validate_parameters(
        RunParameters(
            n_patients=n_patients,
            years=years,
            seed=seed,
            shard_size=shard_size,
            recruitment=recruitment or Recruitment(),
        )
    )
    if in_memory or (in_memory is None and results_tier(n_patients) == "memory"):
        return run_in_memory(protocol, params, on_progress)
    from engine.pipeline.launch import run_streaming  # noqa: PLC0415 - heavy, large runs only

    return run_streaming(protocol, params, runs_dir, on_progress=on_progress)


def run_in_memory(
    protocol: AnyProtocol,
    params: RunParameters,
    on_progress: Callable[[Progress], None] | None = None,
) -> InMemoryResults:
    """Simulate in this process; `params` must be validated."""
    n_patients = params.n_patients
    model = compile_model(protocol)
    started = time.perf_counter()
    outputs = []
    statistics = StatsAccumulator(params.shard_count, params.horizon_days)
    patients_done = visits_done = 0
    for block in plan_blocks(params):
        for output in model.simulate_shards(params, block):
            outputs.append(output)
            stats = shard_stats(output.patients, output.visits, params.horizon_days)
            statistics.add(output.shard_index, 0, 1, stats)
            patients_done += output.patient_count
            visits_done += output.visit_count
        if on_progress is not None:
            on_progress(
                Progress(patients_done, n_patients, visits_done, time.perf_counter() - started)
            )
    return InMemoryResults.from_shards(outputs, protocol, params, statistics.result())
