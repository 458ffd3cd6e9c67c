"""`amdsim resume RUN`: finish an interrupted, cancelled or failed run from its checkpoint."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine.cli.cluster_option import on_cluster_or_here
from engine.cli.profile_option import profile_target, profiled
from engine.cli.run_command import add_execution_arguments, stream_run
from engine.cli.run_lookup import add_runs_dir_argument, resolve_changeable_run, runs_root
from engine.manifest import Manifest
from engine.pipeline import PipelineOptions
from engine.pipeline.launch import resume_run
from engine.resume import read_run_manifest
from engine.run_dir import RunPaths

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `resume` subcommand to the CLI."""
    parser = commands.add_parser(
        "resume",
        help="finish an interrupted run",
        description="Finish a run that was interrupted (killed, crashed), cancelled or failed: "
        "keep what its last checkpoint lists, discard partial files, simulate only the missing "
        "shards. The finished run equals one that was never interrupted.",
    )
    parser.add_argument("run", metavar="RUN", help="run id, unique id prefix or run directory")
    add_execution_arguments(parser)
    add_runs_dir_argument(parser)
    parser.set_defaults(handler=resume)


def resume(args: argparse.Namespace) -> int:
    """Handler of `amdsim resume` (profiled with ``--profile DIR``)."""
    return profiled(args, _resume)


def _resume(args: argparse.Namespace) -> int:
    run_dir = resolve_changeable_run(args.run, runs_root(args), "resume")
    manifest = read_run_manifest(RunPaths(run_dir))
    options = PipelineOptions(
        workers=args.workers,
        writer_lanes=args.writer_lanes,
        checkpoint_every=args.checkpoint_every,
        profile=profile_target(args),
    )

    def on_cluster(client: Any, on_started: Callable[[Any], None]) -> Manifest:
        from engine.cluster.launch import resume_on_cluster  # noqa: PLC0415 - loads Dask

        return resume_on_cluster(client, run_dir, options, on_started)

    return stream_run(
        on_cluster_or_here(
            args.cluster, lambda on_started: resume_run(run_dir, options, on_started), on_cluster
        ),
        manifest.parameters.n_patients,
        run_dir,
        args,
    )
