"""Reading a run's stage timings: shares of each process's time, and the bottleneck in words.

A streaming run's workers and writer threads report where their time goes
(`engine.pipeline.stage_clock`); the metrics stream carries the latest reports and the
manifest keeps the last ones. This module turns them into what the CLI (`--timings`) and
the dashboard's System page show: one row per process with each stage's seconds and share
of its wall time, and one sentence naming what limits the run.

The rule behind the sentence, in order:
1. Workers blocked on a full channel (``waiting for a slot``) for at least a quarter of
   their time: the writer is the bottleneck; its lanes' busiest stage is named.
2. Workers idle (``waiting for work``) for at least a quarter of their time: there is not
   enough work in flight for this many workers (too few shards, or a memory pause).
3. Start-up for at least a quarter of their time: the run is too short for its processes.
4. Otherwise the workers' busiest stage is the bottleneck (usually ``simulate``: more
   cores, or more workers if there are spare cores, make the run faster).
"""

from __future__ import annotations

from collections.abc import Iterable

from ipc.messages import StageTimes

__all__ = ["BOTTLENECK_SHARE", "describe_bottleneck", "in_display_order", "stage_shares"]

BOTTLENECK_SHARE = 0.25  # a waiting stage this large a share of the workers' time names the cause
_IDLE = frozenset({"waiting for work", "waiting for a slot", "waiting for batches", "other"})


def stage_shares(times: Iterable[StageTimes]) -> tuple[float, dict[str, float]]:
    """Summed wall seconds of `times` and each stage's share of them (0..1)."""
    entries = list(times)
    wall = sum(entry.wall_s for entry in entries)
    seconds: dict[str, float] = {}
    for entry in entries:
        for stage, value in entry.stages.items():
            seconds[stage] = seconds.get(stage, 0.0) + value
    return wall, {stage: value / wall if wall > 0 else 0.0 for stage, value in seconds.items()}


def in_display_order(times: Iterable[StageTimes]) -> list[StageTimes]:
    """The processes as they are listed: workers by number, then the writer's threads."""
    order = {"worker": 0, "writer": 1}
    return sorted(times, key=lambda e: (order.get(e.role, 2), _name_key(e.name)))


def describe_bottleneck(times: Iterable[StageTimes]) -> str:
    """One sentence naming what limits the run, with the shares it is judged from."""
    entries = list(times)
    workers = [e for e in entries if e.role == "worker"]
    lanes = [e for e in entries if e.role == "writer" and e.name != "writer"]
    if not workers:
        return "No worker has reported its timings yet."
    _, shares = stage_shares(workers)
    slot_wait = shares.get("waiting for a slot", 0.0)
    idle = shares.get("waiting for work", 0.0)
    startup = shares.get("start-up", 0.0)
    if slot_wait >= BOTTLENECK_SHARE:
        stage, share = _busiest(lanes)
        lanes_said = (
            f"; its lanes spent {_percent(share)} of their time on {stage}" if stage else ""
        )
        return (
            f"The bottleneck is the writer: workers waited for a free channel slot "
            f"{_percent(slot_wait)} of their time{lanes_said}. More writer lanes, a faster disk "
            "or lighter compression would help."
        )
    if idle >= BOTTLENECK_SHARE:
        return (
            f"The workers waited for work {_percent(idle)} of their time: there are too few "
            "shards in flight for this many workers (a smaller shard size or fewer workers), "
            "or the run was paused for memory."
        )
    if startup >= BOTTLENECK_SHARE:
        return (
            f"Start-up took {_percent(startup)} of the workers' time: the run is too short for "
            "its processes to pay off."
        )
    stage, share = _busiest(workers)
    return (
        f"The bottleneck is the workers' {stage} stage ({_percent(share)} of their time); "
        f"the writer keeps up (workers waited for a slot {_percent(slot_wait)} of their time)."
    )


def _busiest(entries: list[StageTimes]) -> tuple[str, float]:
    """The stage (not a wait) with the largest share of `entries`' time; ("", 0) if none."""
    _, shares = stage_shares(entries)
    busy = [(share, stage) for stage, share in shares.items() if stage not in _IDLE]
    if not busy:
        return "", 0.0
    share, stage = max(busy)
    return stage, share


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def _name_key(name: str) -> tuple[str, int]:
    """Sort ``worker-10`` after ``worker-9``."""
    stem, _, number = name.rpartition("-") if "-" in name else name.rpartition(" ")
    return (stem, int(number)) if number.isdigit() else (name, 0)
