"""Entry points of cluster runs: a new run, a resume, a restart, on a Dask `Client`.

The Python API takes a `distributed.Client` the caller owns; the CLI opens one from
``--cluster`` (`engine.cluster.connect.open_client`). Each builds a `ClusterRun`, starts it,
hands it to `on_started` (to follow its metrics or keep it for `cancel()`) and drives it to
the end, like `engine.pipeline.launch` does for local runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.cluster.run import ClusterFaults, ClusterRun
from engine.manifest import Manifest
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters
from engine.pipeline.options import PipelineOptions
from engine.pipeline.takeover import Mode
from engine.resume import read_run_manifest
from engine.run_dir import RunPaths

__all__ = ["restart_on_cluster", "resume_on_cluster", "run_on_cluster"]

OnStarted = Callable[[ClusterRun], None]


def run_on_cluster(
    client: Any,
    protocol: AnyProtocol,
    params: RunParameters,
    run_dir: str | Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
    faults: ClusterFaults | None = None,
) -> Manifest:
    """Run `params` under `protocol` into `run_dir` on the cluster of `client`.

    `run_dir` must be on storage every Dask worker sees at the same path. Returns the final
    manifest; raises `ClusterError` if a task failed on every attempt.
    """
    run = ClusterRun(client, protocol, params, Path(run_dir), options, faults=faults)
    return _drive(run, on_started)


def resume_on_cluster(
    client: Any,
    run_dir: str | Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
) -> Manifest:
    """Finish an interrupted, cancelled or failed run on the cluster: its missing shards only."""
    return _supervise(client, Path(run_dir), "resume", options, on_started)


def restart_on_cluster(
    client: Any,
    run_dir: str | Path,
    options: PipelineOptions | None = None,
    on_started: OnStarted | None = None,
) -> Manifest:
    """Discard a run's results and run it again on the cluster (same id, protocol, params)."""
    return _supervise(client, Path(run_dir), "restart", options, on_started)


def _supervise(
    client: Any,
    run_dir: Path,
    mode: Mode,
    options: PipelineOptions | None,
    on_started: OnStarted | None,
) -> Manifest:
    manifest = read_run_manifest(RunPaths(run_dir))
    run = ClusterRun(client, manifest.protocol, manifest.parameters, run_dir, options, mode=mode)
    return _drive(run, on_started)


def _drive(run: ClusterRun, on_started: OnStarted | None) -> Manifest:
    run.start()
    if on_started is not None:
        on_started(run)
    return run.run()
