"""Entry points of supervised streaming runs: a new run, a resume, a restart.

Each builds a `Supervisor`, starts it, hands it to `on_started` (to subscribe to its
metrics, or keep it for `cancel()`), and drives it to the end. `run_streaming` adds what a
library caller wants: a new run id under a runs root, `Progress` callbacks from the metrics
stream, and `ParquetResults` over the finished run.

Does not cover: the run itself (`engine.pipeline.supervisor`), whether a run may be resumed
(`engine.resume`), choosing the tier (`engine.run_plan`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from engine.manifest import Manifest
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters
from engine.pipeline.options import PipelineOptions
from engine.pipeline.supervisor import Supervisor
from engine.pipeline.takeover import Mode
from engine.results.parquet import ParquetResults
from engine.resume import read_run_manifest
from engine.run_dir import RunPaths, new_run_id
from engine.run_plan import Progress
from ipc.metrics import MetricsSubscriber

__all__ = ["restart_run", "resume_run", "run_pipeline", "run_streaming"]

OnStarted = Callable[[Supervisor], None]


def run_pipeline(
    protocol: AnyProtocol,
    params: RunParameters,
    run_dir: Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
) -> Manifest:
    """Run `params` under `protocol` into `run_dir` with worker processes; the final manifest.

    `on_started` is called once the processes are up (e.g. to subscribe to metrics).
    Raises `WorkerCrashedError` or `WriterFailedError` if the run fails.
    """
    return _drive(Supervisor(protocol, params, run_dir, options), on_started)


def resume_run(
    run_dir: str | Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
) -> Manifest:
    """Finish an interrupted, cancelled or failed run: simulate only its missing shards.

    Compression and the slot size come from the run (shards must be cut as before); workers
    and the other options may differ. Returns the final manifest.
    """
    return _supervise(Path(run_dir), "resume", options, on_started)


def restart_run(
    run_dir: str | Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
) -> Manifest:
    """Discard a run's results and run it again from the start (same id, protocol, params)."""
    return _supervise(Path(run_dir), "restart", options, on_started)


def run_streaming(
    protocol: AnyProtocol,
    params: RunParameters,
    runs_dir: str | os.PathLike[str] = "runs",
    options: PipelineOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ParquetResults:
    """Run into a new directory under `runs_dir`, reporting `Progress`; its results.

    `params` must be validated.
    """
    run_dir = Path(runs_dir) / new_run_id()
    follower = _ProgressFollower(on_progress) if on_progress is not None else None
    try:
        run_pipeline(
            protocol, params, run_dir, options, None if follower is None else follower.attach
        )
    finally:
        if follower is not None:
            follower.stop()
    return ParquetResults(run_dir)


def _supervise(
    run_dir: Path, mode: Mode, options: PipelineOptions | None, on_started: OnStarted | None
) -> Manifest:
    manifest = read_run_manifest(RunPaths(run_dir))
    supervisor = Supervisor(manifest.protocol, manifest.parameters, run_dir, options, mode=mode)
    return _drive(supervisor, on_started)


def _drive(supervisor: Supervisor, on_started: OnStarted | None) -> Manifest:
    supervisor.start()
    if on_started is not None:
        on_started(supervisor)
    return supervisor.run()


class _ProgressFollower:
    """Turns a streaming run's metrics into `Progress` callbacks, from a thread."""

    def __init__(self, on_progress: Callable[[Progress], None]) -> None:
        self.on_progress = on_progress
        self.subscriber: MetricsSubscriber | None = None
        self.thread: threading.Thread | None = None

    def attach(self, supervisor: Supervisor) -> None:
        subscriber = self.subscriber = MetricsSubscriber(supervisor.metrics_address)

        def follow() -> None:
            for sample in subscriber:
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
