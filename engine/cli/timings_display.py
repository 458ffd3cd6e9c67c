"""What `amdsim run --timings` (and `resume --timings`) prints after a streaming run: where
each worker and writer thread spent its time, stage by stage, and the bottleneck in words.

The figures are the manifest's `stage_timings` (`engine.pipeline.stage_clock`); the
sentence is `engine.stage_timings.describe_bottleneck`.
"""

from __future__ import annotations

from rich.table import Table

from engine.cli.console import err_console, out_console, safe_text
from engine.manifest import Manifest
from engine.stage_timings import describe_bottleneck, stage_shares
from ipc.messages import StageTimes

__all__ = ["print_stage_timings", "stage_timings_json"]


def print_stage_timings(manifest: Manifest) -> None:
    """A table of seconds and shares by stage (the workers summed, each writer thread on its
    own), then the bottleneck; one line on stderr when the run has no timings."""
    times = manifest.stage_timings
    if not times:
        err_console.print(
            "no stage timings: they are kept for runs streamed by local worker processes",
            soft_wrap=True,
        )
        return
    table = Table(title="Where the time went", title_justify="left")
    table.add_column("Process")
    table.add_column("Stage")
    table.add_column("Seconds", justify="right")
    table.add_column("Share", justify="right")
    workers = [t for t in times if t.role == "worker"]
    groups = [(f"{len(workers)} worker{'s' * (len(workers) != 1)} (summed)", workers)]
    groups += [(t.name, [t]) for t in times if t.role != "worker"]
    for label, entries in groups:
        if not entries:
            continue
        wall, shares = stage_shares(entries)
        table.add_row(safe_text(label), "wall time", f"{wall:,.2f}", "100 %", style="bold")
        for stage, share in shares.items():
            table.add_row("", safe_text(stage), f"{share * wall:,.2f}", f"{100 * share:.0f} %")
        table.add_section()
    out_console.print(table)
    out_console.print(describe_bottleneck(times), soft_wrap=True)


def stage_timings_json(times: list[StageTimes]) -> dict[str, object]:
    """The timings and the bottleneck sentence, for `--json --timings`."""
    return {
        "stage_timings": [
            {
                "process": t.name,
                "role": t.role,
                "pid": t.pid,
                "wall_s": t.wall_s,
                "stages": t.stages,
            }
            for t in times
        ],
        "bottleneck": describe_bottleneck(times) if times else "",
    }
