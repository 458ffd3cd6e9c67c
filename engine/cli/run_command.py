"""`amdsim run`: simulate a cohort, show progress, print a summary table.

Runs of up to `MEMORY_THRESHOLD_PATIENTS` patients stay in this process (saved with --out);
larger ones stream through worker processes into a run directory, and the progress bar is
a subscriber of the run's metrics stream, like any dashboard.
"""

from __future__ import annotations

import argparse
import os
import threading
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
from engine.manifest import Manifest
from engine.parameters import (
    DEFAULT_SHARD_SIZE,
    MEMORY_THRESHOLD_PATIENTS,
    Recruitment,
    RunParameters,
    validate_parameters,
)
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from engine.protocol import Protocol
from engine.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.run_dir import new_run_id
from engine.runner import Progress as RunProgress
from engine.runner import run_in_memory
from engine.states import DISCONTINUATION_REASON_NAMES
from engine.totals import SummaryStats
from ipc.metrics import MetricsSubscriber

__all__ = ["EXIT_CANCELLED", "default_runs_dir", "register"]

EXIT_CANCELLED = 130


def default_runs_dir() -> Path:
    """``$AMDSIM_RUNS_DIR``, or ``runs`` under the current directory."""
    return Path(os.environ.get("AMDSIM_RUNS_DIR", "runs"))


def register(commands: Any) -> None:
    """Add the `run` subcommand to the CLI."""
    parser = commands.add_parser(
        "run",
        help="simulate a cohort and print a summary",
        description="Simulate a cohort under a protocol and print a summary table. Runs of "
        f"more than {MEMORY_THRESHOLD_PATIENTS} patients stream to a run directory through "
        "worker processes.",
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
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes for large runs (default: one fewer than the CPUs, at least 1)",
    )
    parser.add_argument(
        "--compression",
        choices=("zstd", "snappy", "gzip", "none"),
        default="zstd",
        help="Parquet compression of large runs (default: %(default)s)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where large runs get their directory (default: $AMDSIM_RUNS_DIR or ./runs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="small runs: save the results into this directory; large runs: the run directory",
    )
    parser.add_argument(
        "--format",
        choices=("parquet", "arrow"),
        default="parquet",
        help="file format of small runs saved with --out (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of a table"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `amdsim run`."""
    protocol = call_with_warnings(lambda: load_protocol(args.protocol))
    params = validate_parameters(
        RunParameters(
            n_patients=args.patients,
            years=args.years,
            seed=args.seed,
            shard_size=args.shard_size,
            recruitment=Recruitment(
                mode=args.recruitment,
                period_days=args.recruitment_days,
                patients_per_week=args.patients_per_week,
            ),
        )
    )
    if params.n_patients <= MEMORY_THRESHOLD_PATIENTS:
        return _run_in_memory(args, protocol, params)
    return _run_streaming(args, protocol, params)


def _run_in_memory(args: argparse.Namespace, protocol: Protocol, params: RunParameters) -> int:
    with _progress_bar() as bar:
        task = bar.add_task("simulating", total=params.n_patients)

        def on_progress(progress: RunProgress) -> None:
            bar.update(task, completed=progress.patients_done)

        started = time.perf_counter()
        results = run_in_memory(protocol, params, on_progress)
        wall_s = time.perf_counter() - started
    if args.out is not None:
        results.save(args.out, args.format)
    stats = results.summary_stats()
    if args.json:
        _print_json(protocol, params, stats, wall_s, {"storage": "memory"})
    else:
        _print_table(protocol, params, stats, wall_s, [])
        if args.out is not None:
            out_console.print(f"Saved to {args.out} ({args.format})", soft_wrap=True)
    return 0


def _run_streaming(args: argparse.Namespace, protocol: Protocol, params: RunParameters) -> int:
    run_dir = args.out or (args.runs_dir or default_runs_dir()) / new_run_id()
    options = PipelineOptions(workers=args.workers, compression=args.compression)
    watcher = _ProgressWatcher(params.n_patients)
    started = time.perf_counter()
    try:
        manifest = run_pipeline(protocol, params, run_dir, options, on_started=watcher.attach)
    finally:
        watcher.stop()
    wall_s = time.perf_counter() - started
    stats = manifest.totals.summary()
    storage = [
        ("Run directory", str(run_dir)),
        ("Status", manifest.status),
        ("Bytes on disk", f"{manifest.bytes_on_disk / 2**20:,.1f} MiB"),
        ("Bytes per visit", f"{manifest.bytes_on_disk / max(stats.visits, 1):.2f}"),
        ("Compression ratio", f"{manifest.compression_ratio:.1f}x ({manifest.compression})"),
        ("Workers", str(manifest.workers)),
        ("Peak memory (all processes)", f"{watcher.peak_rss_bytes / 2**20:,.0f} MiB"),
    ]
    if args.json:
        _print_json(
            protocol, params, stats, wall_s, _streaming_document(manifest, run_dir, watcher)
        )
    else:
        _print_table(protocol, params, stats, wall_s, storage)
    if manifest.status == "cancelled":
        err_console.print(f"cancelled: {manifest.error or 'stopped'}; partial results in {run_dir}")
        return EXIT_CANCELLED
    return 0


class _ProgressWatcher:
    """Drives the progress bar from the run's metrics stream, in a background thread."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.peak_rss_bytes = 0
        self._thread: threading.Thread | None = None
        self._subscriber: MetricsSubscriber | None = None
        self._bar = _progress_bar()

    def attach(self, supervisor: Supervisor) -> None:
        try:
            self._subscriber = MetricsSubscriber(supervisor.metrics_address)
        except OSError as exc:  # the run goes on without a bar
            err_console.print(f"[yellow]warning:[/] no progress display ({exc})")
            return
        self._thread = threading.Thread(target=self._follow, name="progress", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        assert self._subscriber is not None
        with self._bar as bar:
            task = bar.add_task("simulating", total=self.total)
            for sample in self._subscriber:
                self.peak_rss_bytes = max(self.peak_rss_bytes, sample.rss_total_bytes)
                bar.update(
                    task,
                    completed=sample.patients_done,
                    description=f"{human_count(sample.visits_per_s)} visits/s, "
                    f"{sample.rss_total_bytes / 2**20:,.0f} MiB",
                )

    def stop(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


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


def _streaming_document(
    manifest: Manifest, run_dir: Path, watcher: _ProgressWatcher
) -> dict[str, Any]:
    return {
        "storage": "parquet",
        "run_id": manifest.run_id,
        "run_dir": str(run_dir),
        "status": manifest.status,
        "bytes_on_disk": manifest.bytes_on_disk,
        "compression_ratio": manifest.compression_ratio,
        "workers": manifest.workers,
        "peak_rss_bytes": watcher.peak_rss_bytes,
    }


def _print_json(
    protocol: Protocol,
    params: RunParameters,
    stats: SummaryStats,
    wall_s: float,
    extra: dict[str, Any],
) -> None:
    document = {
        "protocol": protocol.name,
        "parameters": params,
        "summary": stats,
        "wall_time_s": wall_s,
        "patients_per_s": stats.patients / wall_s,
        "visits_per_s": stats.visits / wall_s,
        **extra,
    }
    out_console.print_json(msgspec.json.encode(document).decode())


def _print_table(
    protocol: Protocol,
    params: RunParameters,
    stats: SummaryStats,
    wall_s: float,
    extra_rows: list[tuple[str, str]],
) -> None:
    out_console.print(
        f"[bold]{protocol.name}[/]: {params.n_patients:,} patients x {params.years:g} years, "
        f"seed {params.seed}",
        soft_wrap=True,
    )
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
    for label, value in extra_rows:
        table.add_row(label, value)
    out_console.print(table)
