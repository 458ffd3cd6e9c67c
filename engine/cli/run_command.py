"""`amdsim run`: simulate a cohort, show progress, print a summary table, optionally save."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from engine.cli.console import call_with_warnings, err_console, human_count, out_console
from engine.parameters import DEFAULT_SHARD_SIZE, Recruitment
from engine.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.results.memory import InMemoryResults
from engine.runner import Progress as RunProgress
from engine.runner import run_simulation
from engine.states import DISCONTINUATION_REASON_NAMES

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `run` subcommand to the CLI."""
    parser = commands.add_parser(
        "run",
        help="simulate a cohort and print a summary",
        description="Simulate a cohort under a protocol and print a summary table.",
    )
    parser.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        help="protocol YAML file or bundled protocol name (default: %(default)s)",
    )
    parser.add_argument(
        "--patients", type=int, default=1000, help="cohort size (default: %(default)s)"
    )
    parser.add_argument(
        "--years", type=float, default=5.0, help="time horizon (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help="patients per shard, the unit of determinism (default: %(default)s)",
    )
    parser.add_argument(
        "--recruitment",
        choices=("cohort", "period", "rate"),
        default="cohort",
        help="cohort: all enrol on day 0; period: Poisson arrivals over --recruitment-days; "
        "rate: Poisson arrivals at --patients-per-week (default: %(default)s)",
    )
    parser.add_argument(
        "--recruitment-days", type=int, default=0, help="length of the recruitment period"
    )
    parser.add_argument("--patients-per-week", type=float, default=0.0, help="recruitment rate")
    parser.add_argument("--out", type=Path, help="save the results into this directory")
    parser.add_argument(
        "--format",
        choices=("parquet", "arrow"),
        default="parquet",
        help="file format with --out (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of a table"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `amdsim run`."""
    protocol = call_with_warnings(lambda: load_protocol(args.protocol))
    recruitment = Recruitment(
        mode=args.recruitment,
        period_days=args.recruitment_days,
        patients_per_week=args.patients_per_week,
    )
    with _progress_bar() as bar:
        task = bar.add_task("simulating", total=args.patients)

        def on_progress(progress: RunProgress) -> None:
            bar.update(task, completed=progress.patients_done)

        started = time.perf_counter()
        results = run_simulation(
            protocol,
            n_patients=args.patients,
            years=args.years,
            seed=args.seed,
            shard_size=args.shard_size,
            recruitment=recruitment,
            on_progress=on_progress,
        )
        wall_s = time.perf_counter() - started
    if args.out is not None:
        results.save(args.out, args.format)
    if args.json:
        out_console.print_json(msgspec.json.encode(_summary_document(results, wall_s)).decode())
    else:
        params = results.parameters
        out_console.print(
            f"[bold]{results.protocol.name}[/]: {params.n_patients:,} patients x "
            f"{params.years:g} years, seed {params.seed}",
            soft_wrap=True,
        )
        out_console.print(_summary_table(results, wall_s))
        if args.out is not None:
            out_console.print(f"Saved to {args.out} ({args.format})", soft_wrap=True)
    return 0


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("patients"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def _summary_document(results: InMemoryResults, wall_s: float) -> dict[str, Any]:
    return {
        "protocol": results.protocol.name,
        "parameters": results.parameters,
        "summary": results.summary_stats(),
        "wall_time_s": wall_s,
        "patients_per_s": results.patient_count / wall_s,
        "visits_per_s": results.visit_count / wall_s,
    }


def _summary_table(results: InMemoryResults, wall_s: float) -> Table:
    stats = results.summary_stats()
    table = Table(show_header=False)
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_row("Patients", f"{stats.patients:,}")
    table.add_row("Visits", f"{stats.visits:,}")
    table.add_row("Injections per patient-year", f"{stats.injections_per_patient_year:.2f}")
    table.add_row("Mean baseline VA (letters)", f"{stats.mean_baseline_vision:.1f}")
    table.add_row(
        "Mean final VA (letters)",
        f"{stats.mean_final_vision:.1f} ({stats.mean_vision_change:+.1f})",
    )
    table.add_row("Discontinued", f"{stats.discontinuation_rate:.1%}")
    for reason in DISCONTINUATION_REASON_NAMES:
        table.add_row(
            f"  {reason.replace('_', ' ')}", f"{stats.discontinuation_rate_by_reason[reason]:.1%}"
        )
    table.add_row("Wall time", f"{wall_s:.2f} s")
    table.add_row("Patients/s", human_count(stats.patients / wall_s))
    table.add_row("Visits/s", human_count(stats.visits / wall_s))
    return table
