"""Streaming runs: a supervisor, worker processes and one writer, results on disk.

`run_pipeline` is the whole thing in one call; `Supervisor` gives access to the run while
it goes (its metrics address, `cancel()`). See DESIGN sections 2, 3 and 5.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.manifest import Manifest
    from engine.parameters import RunParameters
    from engine.pipeline.supervisor import PipelineOptions, Supervisor
    from engine.protocol import Protocol

__all__ = ["PipelineOptions", "Supervisor", "default_workers", "run_pipeline"]


def __getattr__(name: str) -> Any:
    # Lazy, so that worker and writer processes importing one module here stay lean.
    if name in ("PipelineOptions", "Supervisor", "default_workers"):
        from engine.pipeline import supervisor  # noqa: PLC0415 - lazy on purpose

        return getattr(supervisor, name)
    raise AttributeError(f"module 'engine.pipeline' has no attribute {name!r}")


def run_pipeline(
    protocol: Protocol,
    params: RunParameters,
    run_dir: Path,
    options: PipelineOptions | None = None,
    on_started: Callable[[Supervisor], None] | None = None,
) -> Manifest:
    """Run `params` under `protocol` into `run_dir` with worker processes; the final manifest.

    `on_started` is called once the processes are up (e.g. to subscribe to metrics).
    Raises `WorkerCrashedError` or `WriterFailedError` if the run fails.
    """
    from engine.pipeline.supervisor import Supervisor  # noqa: PLC0415 - lazy on purpose

    supervisor = Supervisor(protocol, params, run_dir, options)
    supervisor.start()
    if on_started is not None:
        on_started(supervisor)
    return supervisor.run()
