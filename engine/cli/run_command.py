"""`amdsim run`: simulate a cohort, show progress, print a summary table.

Runs of up to `MEMORY_THRESHOLD_PATIENTS` patients stay in this process (saved with --out)
and are listed in the registry of the runs root all the same; larger ones stream through
worker processes into a run directory under the runs root, checkpointing as they go.
``--restart RUN`` discards a run's results and runs it again; ``--keep N`` sets the
registry's cap on runs.
"""

from __future__ import annotations

import argparse
import datetime
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine.cli.cluster_option import add_cluster_argument, on_cluster_or_here, wants_cluster
from engine.cli.console import call_with_warnings, err_console, out_console, safe_text
from engine.cli.directories import check_directory_option
from engine.cli.out_dir import check_out_dir, needs_staging, run_staged, save_replacing
from engine.cli.profile_option import add_profile_argument, profile_target, profiled
from engine.cli.run_display import (
    ProgressWatcher,
    print_summary,
    print_summary_json,
    progress_bar,
    report_streaming_run,
)
from engine.cli.run_lookup import add_runs_dir_argument, resolve_changeable_run, runs_root
from engine.cli.timings_display import print_stage_timings, stage_timings_json
from engine.errors import AmdsimError, ParameterError
from engine.manifest import Manifest
from engine.model.parameters import (
    DEFAULT_SHARD_SIZE,
    MEMORY_THRESHOLD_PATIENTS,
    Recruitment,
    RunParameters,
    validate_parameters,
)
from engine.model.protocol_loader import (
    DEFAULT_PROTOCOL,
    load_protocol,
    resolve_protocol_path,
)
from engine.model.v1.protocol import Protocol
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from engine.pipeline.launch import restart_run
from engine.pipeline.options import DEFAULT_CHECKPOINT_EVERY
from engine.registry import Registry
from engine.resume import read_run_manifest
from engine.run_dir import RunPaths, new_run_id
from engine.run_labels import check_name, check_notes
from engine.runner import Progress as RunProgress
from engine.runner import run_in_memory
from engine.small_runs import memory_entry
from engine.totals import SummaryStats

__all__ = ["add_execution_arguments", "register", "stream_run"]

# What the run simulates. Their argparse default is None, so --restart can tell whether one
# was given (a restart reruns the run's own protocol and parameters).
MODEL_DEFAULTS: dict[str, Any] = {
    "protocol": DEFAULT_PROTOCOL,
    "patients": 1000,
    "years": 5.0,
    "seed": 0,
    "shard_size": DEFAULT_SHARD_SIZE,
    "recruitment": "cohort",
    "recruitment_days": 0,
    "patients_per_week": 0.0,
}


def register(commands: Any) -> None:
    """Add the `run` subcommand to the CLI."""
    parser = commands.add_parser(
        "run",
        help="simulate a cohort and print a summary",
        description="Simulate a cohort under a protocol and print a summary table. Runs of "
        f"more than {MEMORY_THRESHOLD_PATIENTS} patients stream to a run directory through "
        "worker processes, checkpointing as they go ('amdsim resume' finishes one that was "
        "interrupted).",
    )
    d = MODEL_DEFAULTS
    parser.add_argument(
        "--protocol",
        help=f"protocol YAML file or bundled protocol name (default: {d['protocol']})",
    )
    parser.add_argument("--patients", type=int, help=f"cohort size (default: {d['patients']})")
    parser.add_argument("--years", type=float, help=f"time horizon (default: {d['years']:g})")
    parser.add_argument("--seed", type=int, help=f"random seed (default: {d['seed']})")
    parser.add_argument(
        "--name", default="", help="what to call the run (shown instead of its id; one line)"
    )
    parser.add_argument("--notes", default="", help="why the run was made (free text)")
    parser.add_argument(
        "--shard-size",
        type=int,
        help=f"patients per shard, the unit of determinism (default: {d['shard_size']})",
    )
    parser.add_argument(
        "--recruitment",
        choices=("cohort", "period", "rate"),
        help="cohort: all enrol on day 0; period: Poisson arrivals over --recruitment-days; "
        "rate: Poisson arrivals at --patients-per-week (default: cohort)",
    )
    parser.add_argument("--recruitment-days", type=int, help="length of the recruitment period")
    parser.add_argument("--patients-per-week", type=float, help="recruitment rate")
    add_execution_arguments(parser)
    parser.add_argument(
        "--compression",
        choices=("zstd", "snappy", "gzip", "none"),
        default="zstd",
        help="Parquet compression of large runs (default: %(default)s)",
    )
    add_runs_dir_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="small runs: save the results into this directory; large runs: the run directory",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the amdsim results already in --out (swapped in whole once complete)",
    )
    parser.add_argument(
        "--format",
        choices=("parquet", "arrow"),
        default="parquet",
        help="file format of small runs saved with --out (default: %(default)s)",
    )
    add_keep_argument(parser, "from now on, keep at most N runs under the runs root")
    parser.add_argument(
        "--restart",
        metavar="RUN",
        help="discard the results of run RUN (id, id prefix or directory) and run it again "
        "from the start with its own protocol and parameters",
    )
    parser.set_defaults(handler=run)


def add_keep_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--keep N``: set the registry's cap on runs (shared with `cleanup`)."""
    parser.add_argument(
        "--keep",
        type=keep_count,
        metavar="N",
        help=f"{what}: older finished runs beyond N are marked for cleanup (the cap is "
        "stored in the registry; 'none' removes it)",
    )


def keep_count(text: str) -> int:
    """``--keep`` values: a whole number >= 1, or ``none`` (no cap), read as 0."""
    if text.strip().lower() in ("none", "off"):
        return 0
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs (1 or more, or none)")
    return value


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of how a streaming run executes (shared with `resume`); none change results."""
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes for large runs (default: one fewer than the CPUs, at least 1)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="PATIENTS",
        help="large runs: close part files and checkpoint every PATIENTS patients, so a crash "
        f"loses at most that much work (default: {DEFAULT_CHECKPOINT_EVERY:,}; a resumed run "
        "keeps its own; 0: only when part files reach their size)",
    )
    parser.add_argument(
        "--writer-lanes",
        type=int,
        default=0,
        metavar="N",
        help="large runs: threads writing Parquet in parallel (default: one per two CPUs, 1-4)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of a table"
    )
    parser.add_argument(
        "--timings",
        action="store_true",
        help="large runs: print where each worker and writer thread spent its time, and the "
        "bottleneck (always kept in the run's manifest)",
    )
    add_cluster_argument(parser)
    add_profile_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Handler of `amdsim run` (profiled with ``--profile DIR``)."""
    return profiled(args, _run)


def _run(args: argparse.Namespace) -> int:
    if args.restart is not None:
        return _restart(args)
    if args.out is not None:
        check_directory_option(args.out, "--out")
    if args.runs_dir is not None:
        runs_root(args)  # a --runs-dir naming a file is refused before anything runs
    if args.keep is not None:  # asked for: failing to store it fails the command
        Registry(runs_root(args)).set_max_runs(args.keep or None)
    args.name, args.notes = check_name(args.name), check_notes(args.notes)  # before any work
    values = {name: _given(args, name) for name in MODEL_DEFAULTS}
    protocol = call_with_warnings(lambda: load_protocol(values["protocol"]))
    params = validate_parameters(
        RunParameters(
            n_patients=values["patients"],
            years=values["years"],
            seed=values["seed"],
            shard_size=values["shard_size"],
            recruitment=Recruitment(
                mode=values["recruitment"],
                period_days=values["recruitment_days"],
                patients_per_week=values["patients_per_week"],
            ),
        )
    )
    check_out_dir(args.out, args.overwrite)
    on_cluster = wants_cluster(args.cluster)  # a cluster run streams whatever its size
    if params.n_patients <= MEMORY_THRESHOLD_PATIENTS and not on_cluster:
        return _run_in_memory(args, protocol, params)
    run_dir = args.out or runs_root(args) / new_run_id()
    options = msgspec.structs.replace(
        _options(args), protocol_path=str(resolve_protocol_path(values["protocol"]))
    )
    out = args.out

    def launch(on_started: Callable[[Supervisor], None]) -> Manifest:
        return _into(lambda where: run_pipeline(protocol, params, where, options, on_started))

    def launch_on_cluster(client: Any, on_started: Callable[[Any], None]) -> Manifest:
        from engine.cluster.launch import run_on_cluster  # noqa: PLC0415 - loads Dask

        return _into(
            lambda where: run_on_cluster(client, protocol, params, where, options, on_started)
        )

    def _into(run_in: Callable[[Path], Manifest]) -> Manifest:
        if out is not None and needs_staging(out):  # --overwrite: see out_dir
            return run_staged(run_in, out)
        return run_in(run_dir)

    return stream_run(
        on_cluster_or_here(args.cluster, launch, launch_on_cluster),
        params.n_patients,
        run_dir,
        args,
    )


def stream_run(
    launch: Callable[[Callable[[Supervisor], None]], Manifest],
    total: int,
    run_dir: Path,
    args: argparse.Namespace,
) -> int:
    """Run `launch(on_started)` with a progress bar, then print its summary (and, with
    ``--timings``, its stage timings); the exit code."""
    watcher = ProgressWatcher(total)
    started = time.perf_counter()
    supervisors: list[Supervisor] = []

    def on_started(supervisor: Supervisor) -> None:
        supervisors.append(supervisor)
        watcher.attach(supervisor)

    try:
        manifest = launch(on_started)
    finally:
        watcher.stop()
    wall_s = time.perf_counter() - started
    extra = stage_timings_json(manifest.stage_timings) if args.timings else {}
    code = report_streaming_run(manifest, run_dir, watcher, wall_s, args.json, extra)
    if args.timings and not args.json:
        print_stage_timings(manifest)
    signalled = supervisors[0].cancelled_by if supervisors else None
    if manifest.status == "cancelled" and signalled is not None:
        return 128 + signalled  # as a shell reports it: 130 for SIGINT, 143 for SIGTERM
    return code


def _restart(args: argparse.Namespace) -> int:
    given = [name for name in MODEL_DEFAULTS if getattr(args, name) is not None]
    if given or args.out is not None:
        flags = ", ".join(
            "--" + name.replace("_", "-") for name in given + ["out"] * bool(args.out)
        )
        raise ParameterError(
            f"--restart reruns the run with its own protocol and parameters; drop {flags}"
        )
    run_dir = resolve_changeable_run(args.restart, runs_root(args), "restart")
    manifest = read_run_manifest(RunPaths(run_dir))
    options = _options(args)

    def on_cluster(client: Any, on_started: Callable[[Any], None]) -> Manifest:
        from engine.cluster.launch import restart_on_cluster  # noqa: PLC0415 - loads Dask

        return restart_on_cluster(client, run_dir, options, on_started)

    return stream_run(
        on_cluster_or_here(
            args.cluster, lambda on_started: restart_run(run_dir, options, on_started), on_cluster
        ),
        manifest.parameters.n_patients,
        run_dir,
        args,
    )


def _options(args: argparse.Namespace) -> PipelineOptions:
    return PipelineOptions(
        workers=args.workers,
        writer_lanes=args.writer_lanes,
        compression=args.compression,
        checkpoint_every=args.checkpoint_every,
        name=check_name(getattr(args, "name", "") or ""),
        notes=check_notes(getattr(args, "notes", "") or ""),
        profile=profile_target(args),
    )


def _given(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name)
    return MODEL_DEFAULTS[name] if value is None else value


def _run_in_memory(args: argparse.Namespace, protocol: Protocol, params: RunParameters) -> int:
    created = datetime.datetime.now(datetime.UTC)
    with progress_bar() as bar:
        task = bar.add_task("simulating", total=params.n_patients)

        def on_progress(progress: RunProgress) -> None:
            bar.update(task, completed=progress.patients_done)

        started = time.perf_counter()
        results = run_in_memory(protocol, params, on_progress)
        wall_s = time.perf_counter() - started
    if args.out is not None:
        save_replacing(results, args.out, args.format)
    stats = results.summary_stats()
    run_id = call_with_warnings(lambda: _list_small_run(args, protocol, params, stats, created))
    if args.json:
        extra = {"storage": "memory", "run_id": run_id}
        extra["location"] = str(args.out.resolve()) if args.out is not None else None
        print_summary_json(protocol.name, params, stats, wall_s, extra)
    else:
        rows = [("Run", run_id)] if run_id else []
        if args.out is None:
            rows.append(("Saved", "not saved (--out DIR keeps the rows)"))
        print_summary(protocol.name, params, stats, wall_s, rows)
        if args.out is not None:
            out_console.print(f"Saved to {safe_text(args.out)} ({args.format})", soft_wrap=True)
    if args.timings:
        err_console.print(
            "no stage timings: this run ran in memory, in one process; they are kept for runs "
            f"of more than {MEMORY_THRESHOLD_PATIENTS:,} patients",
            soft_wrap=True,
        )
    return 0


def _list_small_run(
    args: argparse.Namespace,
    protocol: Protocol,
    params: RunParameters,
    stats: SummaryStats,
    created: datetime.datetime,
) -> str | None:
    """List a finished small run in the registry; its id, or None (with a warning) if the
    registry cannot be written: the run itself has succeeded and its summary still prints."""
    run_id = new_run_id()
    try:
        root = runs_root(args)
        counts = (stats.patients, stats.visits)
        entry = memory_entry(
            run_id,
            protocol.name,
            params,
            counts,
            created,
            args.out,
            name=args.name,
            notes=args.notes,
        )
        Registry(root).add(entry)
    except AmdsimError as exc:
        warnings.warn(f"this run is not listed in 'amdsim list': {exc}", stacklevel=1)
        return None
    return run_id
