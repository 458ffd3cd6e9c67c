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
from engine.parameters import (
    MEMORY_THRESHOLD_PATIENTS,
    Recruitment,
    RunParameters,
    validate_parameters,
)
from engine.protocol import Protocol
from engine.results.base import SimulationResults
from engine.results.memory import HEADER_FILE, InMemoryResults
from engine.results.parquet import ParquetResults
from engine.run_dir import new_run_id

__all__ = ["ResultsFactory"]


class _ProgressFollower:
    """Turns a streaming run's metrics into `Progress` callbacks, from a thread."""

    def __init__(self, on_progress: Callable[..., None]) -> None:
        self.on_progress = on_progress
        self.subscriber = None
        self.thread = None

    def attach(self, supervisor: object) -> None:
        import threading  # noqa: PLC0415

        from engine.runner import Progress  # noqa: PLC0415
        from ipc.metrics import MetricsSubscriber  # noqa: PLC0415

        self.subscriber = MetricsSubscriber(supervisor.metrics_address)  # type: ignore[attr-defined]

        def follow() -> None:
            for sample in self.subscriber:
                self.on_progress(
                    Progress(
                        sample.patients_done,
                        sample.patients_total,
                        sample.visits_written,
                        sample.elapsed_s,
                    )
                )

        self.thread = threading.Thread(target=follow, name="progress", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5.0)  # the stream ends with the run
        if self.subscriber is not None:
            self.subscriber.close()


class ResultsFactory:
    """Where a run's results live, decided by its size."""

    @staticmethod
    def tier(n_patients: int) -> Literal["memory", "parquet"]:
        """``memory`` up to `MEMORY_THRESHOLD_PATIENTS` patients, else ``parquet``."""
        return "memory" if n_patients <= MEMORY_THRESHOLD_PATIENTS else "parquet"

    @staticmethod
    def create_results(
        protocol: Protocol,
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
        from engine.runner import run_in_memory  # noqa: PLC0415 - avoids an import cycle

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
        from engine.pipeline import run_pipeline  # noqa: PLC0415 - heavy, only for large runs

        run_dir = Path(runs_dir) / new_run_id()
        follower = _ProgressFollower(on_progress) if on_progress is not None else None
        try:
            run_pipeline(
                protocol,
                params,
                run_dir,
                pipeline_options,  # type: ignore[arg-type]
                on_started=None if follower is None else follower.attach,
            )
        finally:
            if follower is not None:
                follower.stop()
        return ParquetResults(run_dir)

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
