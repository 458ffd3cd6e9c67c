"""Run a simulation in this process and return `InMemoryResults`.

The simple path for runs small enough to hold in memory: no worker processes, no files.
Blocks of shards are simulated one after another, reporting progress after each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.kernel import simulate_shards
from engine.parameters import DEFAULT_SHARD_SIZE, Recruitment, RunParameters, validate_parameters
from engine.protocol import Protocol
from engine.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.results.memory import InMemoryResults
from engine.shards import plan_blocks
from engine.stats.run_stats import StatsAccumulator
from engine.stats.shard_stats import shard_stats
from engine.tables import compile_protocol

__all__ = ["Progress", "run_simulation"]


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run has got; `elapsed_s` is wall time since it started."""

    patients_done: int
    patients_total: int
    visits_done: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of patients simulated, 0..1."""
        return self.patients_done / self.patients_total if self.patients_total else 1.0


def run_simulation(
    protocol: Protocol | str | os.PathLike[str] = DEFAULT_PROTOCOL,
    n_patients: int = 1000,
    years: float = 5.0,
    seed: int = 0,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    recruitment: Recruitment | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> InMemoryResults:
    """Simulate `n_patients` for `years` under `protocol` (a struct, path or bundled name).

    Raises `ProtocolError` or `ParameterError` before simulating anything if an input is bad.
    """
    if not isinstance(protocol, Protocol):
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
    tables = compile_protocol(protocol)
    started = time.perf_counter()
    outputs = []
    statistics = StatsAccumulator(params.shard_count, params.horizon_days)
    patients_done = visits_done = 0
    for block in plan_blocks(params):
        for output in simulate_shards(tables, params, block):
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
