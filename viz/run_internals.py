"""The System page's view of a live run's internals: each process's memory and pid, the
shared-memory channel's slots, shards done. What a developer or a performance tuner reads; the
Run page keeps to progress and one memory bar (`viz.memory_bar`)."""

from __future__ import annotations

from engine.memory import Thresholds
from ipc.messages import MetricsSample
from viz.safe_text import plain

__all__ = ["run_internals_markdown"]


def run_internals_markdown(sample: MetricsSample, limit_bytes: int, thresholds: Thresholds) -> str:
    """Markdown for one running run: a line of totals, then a table of its processes."""
    limit = sample.memory_limit_bytes or limit_bytes
    channel = (
        f"channel {sample.channel_in_use} of {sample.channel_slots} slots in use "
        f"(peak {sample.channel_peak})"
        if sample.channel_slots
        else "no channel: on a cluster, each task writes its own part files"
    )
    head = (
        f"**Run {plain(sample.run_id)}**: shards {sample.shards_done:,} / "
        f"{sample.shards_total:,} · {channel} · "
        f"{sample.rss_total_bytes / 2**20:,.0f} MiB over {len(sample.processes)} processes"
    )
    rows = ["| process | pid | MiB | % of limit | level |", "|---|---:|---:|---:|---|"]
    for process in sample.processes:
        fraction = process.rss_bytes / limit if limit else 0.0
        rows.append(
            f"| {plain(process.role)} | {process.pid or '-'} | {process.rss_bytes / 2**20:,.0f} | "
            f"{100 * fraction:.1f} | {thresholds.level(fraction)} |"
        )
    return head + "\n\n" + "\n".join(rows)
