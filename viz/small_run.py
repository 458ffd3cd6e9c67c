"""A small run from the dashboard's Run page, simulated in memory off the server's event loop.

Runs of up to `MEMORY_THRESHOLD_PATIENTS` patients need no run process: the dashboard
simulates them itself and keeps the results in the session. Simulated inside a click handler,
such a run held the server's single event loop for the whole run (0.85 s round trips for every
other session); here it goes to the server's small-run threads (`ServerContext.small_runs`),
and the page's periodic refresh picks up the finished results. numpy releases the GIL in its
kernels and Python switches threads every few milliseconds, so other sessions keep answering.
Does not cover: cancelling (a small run lasts about a second).
"""

from __future__ import annotations

import datetime
import logging
import time
from concurrent.futures import Future

from engine.errors import AmdsimError
from engine.model.parameters import RunParameters
from engine.model.v1.protocol import Protocol
from engine.results.base import SimulationResults
from engine.run_dir import new_run_id
from engine.runner import run_simulation
from engine.small_runs import memory_entry
from viz.context import ServerContext

__all__ = ["SmallRun"]

log = logging.getLogger(__name__)


class SmallRun:
    """One in-memory run, going in a small-run thread; `key` is its run id from the start."""

    def __init__(
        self,
        context: ServerContext,
        protocol: Protocol,
        params: RunParameters,
        name: str = "",
        notes: str = "",
    ) -> None:
        self.context = context
        self.name, self.notes = name, notes
        self.protocol = protocol
        self.params = params
        self.key = new_run_id()  # listed in the registry under it, as "memory, not saved"
        self.created = datetime.datetime.now(datetime.UTC)
        self.started = time.perf_counter()
        self.future: Future[SimulationResults] = context.small_runs.submit(self._simulate)

    def _simulate(self) -> SimulationResults:
        with self.context.timings.measure("in-memory run"):
            params = self.params
            return run_simulation(
                self.protocol,
                n_patients=params.n_patients,
                years=params.years,
                seed=params.seed,
                recruitment=params.recruitment,
                in_memory=True,
            )

    @property
    def done(self) -> bool:
        return self.future.done()

    def results(self, timeout_s: float | None = None) -> SimulationResults:
        """The finished results (waiting up to `timeout_s`); raises what the run raised."""
        results = self.future.result(timeout_s)
        self._list(results)
        return results

    def seconds(self) -> float:
        """Seconds from the click to now."""
        return time.perf_counter() - self.started

    def _list(self, results: SimulationResults) -> None:
        """List the finished run on the Runs page; a registry problem only logs."""
        counts = (results.patient_count, results.visit_count)
        try:
            self.context.registry().add(
                memory_entry(
                    self.key,
                    self.protocol.name,
                    self.params,
                    counts,
                    self.created,
                    name=self.name,
                    notes=self.notes,
                )
            )
        except AmdsimError as exc:
            log.warning("small run %s is not listed in the registry: %s", self.key, exc)
