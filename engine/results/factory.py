"""Choose the results tier for a run, and open saved results of either tier.

Runs of at most `MEMORY_THRESHOLD_PATIENTS` stay in this process (`InMemoryResults`); larger
ones stream to a run directory through worker processes and are read back lazily
(`ParquetResults`). `open` recognises both on disk: a run directory has `manifest.json`,
saved in-memory results have `results.json`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from engine.errors import RunNotFoundError
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import (
    MEMORY_THRESHOLD_PATIENTS,  # noqa: F401 - re-exported (viz.run_page)
    Recruitment,
    RunParameters,
    validate_parameters,
)
from engine.model.protocol_loader import validate_protocol
from engine.results.base import SimulationResults
from engine.results.memory import HEADER_FILE, InMemoryResults
from engine.results.parquet import ParquetResults
from engine.run_plan import results_tier

__all__ = ["ResultsFactory"]


class ResultsFactory:
    """Where a run's results live, decided by its size."""

    @staticmethod
    def tier(n_patients: int) -> Literal["memory", "parquet"]:
        """``memory`` up to `MEMORY_THRESHOLD_PATIENTS` patients, else ``parquet``."""
        return results_tier(n_patients)

    @staticmethod
    def create_results(
        protocol: AnyProtocol,
        n_patients: int,
        years: float,
        seed: int = 0,
        *,
        shard_size: int | None = None,
        recruitment: Recruitment | None = None,
        runs_dir: str | os.PathLike[str] = "runs",
        pipeline_options: object | None = None,
        on_progress: Callable[..., None] | None = None,
    ) -> SimulationResults:
        """Simulate in the tier `n_patients` calls for and return the results.

        Small runs return `InMemoryResults`; large ones stream into a new directory under
        `runs_dir` and return `ParquetResults` over it.
        """
        from engine.runner import run_in_memory  # noqa: PLC0415 - runner loads this package

        protocol = validate_protocol(protocol)  # as run_simulation: a struct built in Python
        params = validate_parameters(
            RunParameters(
                n_patients=n_patients,
                years=years,
                seed=seed,
                recruitment=recruitment or Recruitment(),
                **({} if shard_size is None else {"shard_size": shard_size}),
            )
        )
        if ResultsFactory.tier(n_patients) == "memory":
            return run_in_memory(protocol, params, on_progress=on_progress)
        from engine.pipeline.launch import run_streaming  # noqa: PLC0415 - heavy, large runs only

        return run_streaming(
            protocol,
            params,
            runs_dir,
            pipeline_options,  # type: ignore[arg-type]
            on_progress=on_progress,
        )

    @staticmethod
    def open(path: str | os.PathLike[str]) -> SimulationResults:
        """Open a run directory or saved in-memory results."""
        folder = Path(path)
        if (folder / "manifest.json").is_file():
            return ParquetResults(folder)
        if (folder / HEADER_FILE).is_file():
            return InMemoryResults.load(folder)
        raise RunNotFoundError(
            f"{folder} holds no results (neither manifest.json nor {HEADER_FILE})"
        )
