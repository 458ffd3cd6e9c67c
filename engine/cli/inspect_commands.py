"""`amdsim show RUN` and `amdsim patient RUN ID`: one run's summary, storage and one patient.

Both open the run through `ResultsFactory.open`, so they work on run directories and on
saved in-memory results alike, and neither reads more than it prints: `show` comes from
stored statistics, `patient` reads one row group.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import msgspec
from rich.table import Table

from engine.cli.console import out_console, safe_text
from engine.cli.registry_commands import format_bytes
from engine.cli.run_display import summary_rows
from engine.cli.run_lookup import add_runs_dir_argument, resolve_run, runs_root
from engine.errors import ParameterError
from engine.results import ParquetResults, ResultsFactory, SimulationResults
from engine.run_liveness import live_status
from engine.stats.outcome_table import NOT_AVAILABLE, outcome_lines
from engine.stats.shard_stats import SKETCH_NAMES

__all__ = ["register", "run_overview"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def register(commands: Any) -> None:
    """Add `show` and `patient` to the CLI."""
    show = commands.add_parser(
        "show",
        help="summary statistics and storage of one run",
        description="Show one run: status, outcomes, distributions and where its rows are "
        "(memory or disk, sizes, compression). Reads stored statistics, never every row.",
    )
    show.add_argument("run", metavar="RUN", help="run id, unique id prefix or results directory")
    show.add_argument("--json", action="store_true", help="print as JSON")
    add_runs_dir_argument(show)
    show.set_defaults(handler=show_run)

    patient = commands.add_parser(
        "patient",
        help="one patient's record and visit timeline",
        description="Show one patient of a run: their row and every visit, in order.",
    )
    patient.add_argument("run", metavar="RUN", help="run id, unique id prefix or results directory")
    patient.add_argument("patient_id", metavar="ID", type=int, help="patient id (0-based)")
    patient.add_argument("--json", action="store_true", help="print as JSON")
    add_runs_dir_argument(patient)
    patient.set_defaults(handler=show_patient)


def show_run(args: argparse.Namespace) -> int:
    """Handler of `amdsim show`."""
    run_dir = resolve_run(args.run, runs_root(args))
    with ResultsFactory.open(run_dir) as results:
        overview = run_overview(results, run_dir)
    if args.json:
        out_console.print_json(msgspec.json.encode(overview).decode())
        return 0
    _print_overview(overview)
    return 0


def show_patient(args: argparse.Namespace) -> int:
    """Handler of `amdsim patient`."""
    run_dir = resolve_run(args.run, runs_root(args))
    with ResultsFactory.open(run_dir) as results:
        try:
            record = results.get_patient(args.patient_id)
        except KeyError as exc:
            raise ParameterError(str(exc.args[0])) from None
        visits = record.visits.to_pylist()
    # Float32 columns (age, years) read back as Python floats with float noise
    # (75.97269439697266); two decimals are all they hold.
    patient = {k: round(v, 2) if isinstance(v, float) else v for k, v in record.patient.items()}
    if args.json:
        document = {"patient": patient, "visits": visits}
        out_console.print_json(msgspec.json.encode(document).decode())
        return 0
    out_console.print(
        f"[bold]Patient {patient['patient_id']}[/] of {safe_text(run_dir)}", soft_wrap=True
    )
    row = Table(show_header=False)
    row.add_column("field", no_wrap=True)
    row.add_column("value", justify="right", no_wrap=True)
    for name, value in patient.items():
        row.add_row(safe_text(name.replace("_", " ")), "-" if value is None else safe_text(value))
    out_console.print(row)
    timeline = Table(title="Visits")
    for column in ("Visit", "Day", "Interval", "VA", "Change", "Injected", "State"):
        timeline.add_column(column, justify="left" if column == "State" else "right")
    baseline = patient["baseline_vision"]
    for visit in visits:
        change = visit["vision"] - baseline
        timeline.add_row(
            str(visit["visit"]),
            str(visit["day"]),
            "-" if visit["interval_days"] is None else str(visit["interval_days"]),
            str(visit["vision"]),
            f"{change:+d}",
            "yes" if visit["injected"] else "",
            safe_text(visit["disease_state"]),
        )
    out_console.print(timeline)
    return 0


def run_overview(results: SimulationResults, location: Path) -> dict[str, Any]:
    """Everything `show` prints, as plain data (also its --json output)."""
    params = results.parameters
    statistics = results.statistics()
    overview: dict[str, Any] = {
        "location": str(location),
        "protocol": results.protocol.name,
        "parameters": params,
        "storage": results.storage,
        "summary": results.summary_stats(),
        # docs/model.md 6; format-1 runs (the visit-based model) lack what it needs
        "outcome_table": statistics.outcome_table() or NOT_AVAILABLE,
        "va_quantiles": {
            which: dict(zip(_labels(), statistics.va_quantiles(which, QUANTILES), strict=True))
            for which in ("baseline", "final", "change")
        },
        "distributions": {
            name: {
                "mean": _finite(statistics.sketch_mean(name)),
                **dict(
                    zip(
                        _labels(),
                        map(_finite, statistics.sketch_quantiles(name, QUANTILES)),
                        strict=True,
                    )
                ),
            }
            for name in SKETCH_NAMES
        },
    }
    if isinstance(results, ParquetResults):
        overview.update(_disk_overview(results))
    else:
        uncompressed = results.memory_usage_mb * 2**20
        overview.update(
            run_id=None,
            status="completed",
            patients_stored=results.patient_count,
            visits_stored=results.visit_count,
            bytes_in_memory=int(uncompressed),
            bytes_on_disk=sum(p.stat().st_size for p in location.iterdir() if p.is_file()),
        )
    return overview


def _disk_overview(results: ParquetResults) -> dict[str, Any]:
    manifest = results.manifest
    status = live_status(manifest.status, manifest.supervisor_pid, manifest.supervisor_started)
    on_disk = results.bytes_on_disk
    uncompressed = results.uncompressed_bytes
    return {
        "run_id": manifest.run_id,
        "status": status,
        "error": manifest.error,
        "created": manifest.created,
        "finished": manifest.finished,
        "resumes": manifest.resumes,
        "workers": manifest.workers,
        "compression": manifest.compression,
        "patients_stored": results.patient_count,
        "visits_stored": results.visit_count,
        "part_files": results.part_file_count,
        "bytes_on_disk": on_disk,
        "bytes_uncompressed": uncompressed,
        "compression_ratio": uncompressed / on_disk if on_disk else 0.0,
    }


def _print_overview(overview: dict[str, Any]) -> None:
    params = overview["parameters"]
    title = safe_text(overview["run_id"] or overview["location"])
    out_console.print(
        f"[bold]{title}[/]  {safe_text(overview['protocol'])}: {params.n_patients:,} patients x "
        f"{params.years:g} years, seed {params.seed}, shards of {params.shard_size:,}",
        soft_wrap=True,
    )
    status = overview["status"]
    if status != "completed":
        stored = overview["patients_stored"]
        out_console.print(
            f"[yellow]{safe_text(status)}[/]: {stored:,} of {params.n_patients:,} patients on "
            "disk; the figures below cover those. Finish it with "
            f"'amdsim resume {safe_text(overview['run_id'])}'.",
            soft_wrap=True,
        )
        if overview.get("error"):
            out_console.print(f"error: {safe_text(overview['error'])}", soft_wrap=True)
    outcomes = Table(title="Outcomes", show_header=False)
    outcomes.add_column("measure", no_wrap=True)
    outcomes.add_column("value", justify="right", no_wrap=True)
    for label, value in summary_rows(overview["summary"]):
        outcomes.add_row(label, value)
    out_console.print(outcomes)
    table = overview["outcome_table"]
    for line in outcome_lines(None if isinstance(table, str) else table):
        out_console.print(line, markup=False, highlight=False, soft_wrap=True)

    spread = Table(title="Distributions (VA exact; others t-digest)")
    spread.add_column("quantity", no_wrap=True)
    for label in ("mean", *_labels()):
        spread.add_column(label, justify="right")
    summary = overview["summary"]
    va_means = {
        "baseline": summary.mean_baseline_vision,
        "final": summary.mean_final_vision,
        "change": summary.mean_vision_change,
    }
    for which, quantiles in overview["va_quantiles"].items():
        spread.add_row(
            f"VA {which} (letters)",
            f"{va_means[which]:.1f}",
            *(f"{v:g}" for v in quantiles.values()),
        )
    for name, values in overview["distributions"].items():
        spread.add_row(name.replace("_", " "), *(_number(v) for v in values.values()))
    out_console.print(spread)

    storage = Table(title="Storage", show_header=False)
    storage.add_column("what", no_wrap=True)
    storage.add_column("value", justify="right", overflow="fold")
    storage.add_row("Held in", "memory" if overview["storage"] == "memory" else "Parquet on disk")
    storage.add_row("Location", safe_text(overview["location"]))
    storage.add_row("Patients stored", f"{overview['patients_stored']:,}")
    storage.add_row("Visits stored", f"{overview['visits_stored']:,}")
    storage.add_row("Bytes on disk", format_bytes(overview["bytes_on_disk"]))
    if overview["storage"] == "memory":
        storage.add_row("Bytes in memory", format_bytes(overview["bytes_in_memory"]))
    else:
        storage.add_row("Bytes uncompressed", format_bytes(overview["bytes_uncompressed"]))
        storage.add_row(
            "Compression ratio", f"{overview['compression_ratio']:.1f}x ({overview['compression']})"
        )
        storage.add_row("Part files (per table)", str(overview["part_files"]))
        visits = max(overview["visits_stored"], 1)
        storage.add_row("Bytes per visit", f"{overview['bytes_on_disk'] / visits:.2f}")
        storage.add_row("Resumed", f"{overview['resumes']} times")
    out_console.print(storage)


def _labels() -> list[str]:
    return [f"p{round(q * 100)}" for q in QUANTILES]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
