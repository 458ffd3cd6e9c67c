"""What `run`, `resume` and `show` print: the progress bar of a streaming run and summaries.

The progress bar is a subscriber of the run's metrics stream, like any dashboard, so it
shows what every other observer sees: patients on disk, visits/s, memory of all processes.
"""

from __future__ import annotations

import threading
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

from engine.cli.console import err_console, human_count, out_console, safe_text
from engine.manifest import Manifest
from engine.model.parameters import RunParameters
from engine.totals import SummaryStats
from ipc.metrics import MetricsSubscriber

__all__ = [
    "ProgressWatcher",
    "print_summary",
    "print_summary_json",
    "progress_bar",
    "report_streaming_run",
    "summary_rows",
]

EXIT_CANCELLED = 130


class ProgressWatcher:
    """Drives the progress bar from a run's metrics stream, in a background thread.

    Also remembers what a summary needs afterwards: the peak memory of all processes and how
    many patients and visits were already on disk when a resumed run started.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.peak_rss_bytes = 0
        self.memory_limit_bytes = 0
        self.memory_limit_source = ""
        self.resumed_patients = 0
        self.resumed_visits = 0
        self._thread: threading.Thread | None = None
        self._subscriber: MetricsSubscriber | None = None
        self._bar = progress_bar()

    def attach(self, supervisor: Any) -> None:
        """Subscribe to `supervisor`'s metrics (called once its processes are up)."""
        self.resumed_patients = supervisor.resumed_patients
        self.resumed_visits = supervisor.resumed_visits
        try:
            self._subscriber = MetricsSubscriber(supervisor.metrics_address)
        except OSError as exc:  # the run goes on without a bar
            err_console.print(f"[yellow]warning:[/] no progress display ({safe_text(exc)})")
            return
        self._thread = threading.Thread(target=self._follow, name="progress", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        assert self._subscriber is not None
        with self._bar as bar:
            task = bar.add_task("simulating", total=self.total, completed=self.resumed_patients)
            for sample in self._subscriber:
                self.peak_rss_bytes = max(self.peak_rss_bytes, sample.rss_total_bytes)
                self.memory_limit_bytes = sample.memory_limit_bytes
                self.memory_limit_source = sample.memory_limit_source
                bar.update(
                    task,
                    completed=sample.patients_done,
                    description=f"{human_count(sample.visits_per_s)} visits/s, "
                    f"{sample.rss_total_bytes / 2**20:,.0f} MiB",
                )

    def stop(self) -> None:
        """End the subscription and the bar."""
        if self._subscriber is not None:
            self._subscriber.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def progress_bar() -> Progress:
    """A bar of patients done, on stderr, shown only on a terminal."""
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


def summary_rows(stats: SummaryStats) -> list[tuple[str, str]]:
    """The model's outcomes as (label, value) rows."""
    rows = [
        ("Patients", f"{stats.patients:,}"),
        ("Visits", f"{stats.visits:,}"),
        ("Injections per patient-year", f"{stats.injections_per_patient_year:.2f}"),
        ("Mean baseline VA (letters)", f"{stats.mean_baseline_vision:.1f}"),
        (
            "Mean final VA (letters)",
            f"{stats.mean_final_vision:.1f} ({stats.mean_vision_change:+.1f})",
        ),
        ("Discontinued", f"{stats.discontinuation_rate:.1%}"),
    ]
    for reason, rate in stats.discontinuation_rate_by_reason.items():  # the run's format's
        rows.append((f"  {reason.replace('_', ' ')}", f"{rate:.1%}"))
    return rows


def print_summary(
    protocol_name: str,
    params: RunParameters,
    stats: SummaryStats,
    wall_s: float,
    extra_rows: list[tuple[str, str]],
    simulated: tuple[int, int] | None = None,
) -> None:
    """The summary table; rates use `simulated` (patients, visits) if given, else the totals."""
    patients, visits = simulated or (stats.patients, stats.visits)
    out_console.print(
        f"[bold]{safe_text(protocol_name)}[/]: {params.n_patients:,} patients x "
        f"{params.years:g} years, "
        f"seed {params.seed}",
        soft_wrap=True,
    )
    table = Table(show_header=False)
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")  # long paths wrap, labels stay
    for label, value in summary_rows(stats):
        table.add_row(label, value)
    table.add_row("Wall time", f"{wall_s:.2f} s")
    table.add_row("Patients/s", human_count(patients / wall_s))
    table.add_row("Visits/s", human_count(visits / wall_s))
    for label, value in extra_rows:  # paths and messages: user text
        table.add_row(safe_text(label), safe_text(value))
    out_console.print(table)


def print_summary_json(
    protocol_name: str,
    params: RunParameters,
    stats: SummaryStats,
    wall_s: float,
    extra: dict[str, Any],
    simulated: tuple[int, int] | None = None,
) -> None:
    """The summary as one JSON document on stdout."""
    patients, visits = simulated or (stats.patients, stats.visits)
    document = {
        "protocol": protocol_name,
        "parameters": params,
        "summary": stats,
        "wall_time_s": wall_s,
        "patients_per_s": patients / wall_s,
        "visits_per_s": visits / wall_s,
        **extra,
    }
    out_console.print_json(msgspec.json.encode(document).decode())


def report_streaming_run(
    manifest: Manifest,
    run_dir: Path,
    watcher: ProgressWatcher,
    wall_s: float,
    as_json: bool,
    json_extra: dict[str, Any] | None = None,
) -> int:
    """Print the summary of a streaming run that has ended; returns the exit code.

    `json_extra` joins the JSON document (the stage timings of ``--json --timings``).
    """
    stats = manifest.totals.summary()
    simulated = (
        stats.patients - watcher.resumed_patients,
        stats.visits - watcher.resumed_visits,
    )
    if as_json:
        print_summary_json(
            manifest.protocol.name,
            manifest.parameters,
            stats,
            wall_s,
            {
                "storage": "parquet",
                "run_id": manifest.run_id,
                "run_dir": str(run_dir),
                "status": manifest.status,
                "bytes_on_disk": manifest.bytes_on_disk,
                "compression_ratio": manifest.compression_ratio,
                "workers": manifest.workers,
                "resumes": manifest.resumes,
                "patients_resumed": watcher.resumed_patients,
                "peak_rss_bytes": watcher.peak_rss_bytes,
                "memory_limit_bytes": watcher.memory_limit_bytes,
                "memory_limit_source": watcher.memory_limit_source,
                **(json_extra or {}),
            },
            simulated,
        )
    else:
        storage = [
            ("Run directory", str(run_dir)),
            ("Status", manifest.status),
            ("Bytes on disk", f"{manifest.bytes_on_disk / 2**20:,.1f} MiB"),
            ("Bytes per visit", f"{manifest.bytes_on_disk / max(stats.visits, 1):.2f}"),
            ("Compression ratio", f"{manifest.compression_ratio:.1f}x ({manifest.compression})"),
            ("Workers", str(manifest.workers)),
            ("Peak memory (all processes)", f"{watcher.peak_rss_bytes / 2**20:,.0f} MiB"),
        ]
        if watcher.memory_limit_bytes:
            limit = f"{watcher.memory_limit_bytes / 2**30:,.1f} GiB ({watcher.memory_limit_source})"
            storage.append(("Memory limit", limit))
        if watcher.resumed_patients:
            storage.insert(2, ("Patients already on disk", f"{watcher.resumed_patients:,}"))
        print_summary(
            manifest.protocol.name, manifest.parameters, stats, wall_s, storage, simulated
        )
    if manifest.status == "cancelled":
        err_console.print(
            f"cancelled: {safe_text(manifest.error or 'stopped')}; partial results in "
            f"{safe_text(run_dir)} (carry on with 'amdsim resume {safe_text(manifest.run_id)}')",
            soft_wrap=True,
        )
        return EXIT_CANCELLED
    return 0
