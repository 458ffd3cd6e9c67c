"""How a cluster run is cut into tasks: shards simulated at once, and shards per task.

A task holds one block of consecutive shards but simulates at most `batch_shards` of them at
once, so its peak memory is bounded by that batch (the existing estimator's per-row figure,
`engine.memory.estimate`), not by the block: a task never holds a whole cohort. The batch is
the local pipeline's kernel block, lowered until it fits in half the smallest memory limit a
worker advertises (Dask spills at 60 % and pauses a worker at 80 % of it). Blocks are sized
for about four tasks per worker thread, so a slow or lost worker costs little, and at least
one batch each, so the scheduler's per-task overhead stays small. None of this changes a row:
outputs depend on shard indices only.

Does not cover: the worker pool (Dask's), submitting (`engine.cluster.run`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ClusterError
from engine.memory.estimate import WORKER_BYTES, WORKER_BYTES_PER_ROW, WRITER_LANE_BYTES
from engine.model.parameters import RunParameters
from engine.model.shards import plan_blocks

__all__ = ["TaskPlan", "plan_tasks", "task_memory_bytes", "worker_limits"]

MiB = 1 << 20
MEMORY_SHARE = 0.5  # of a worker's memory limit that one task may use
TASKS_PER_THREAD = 4


@dataclass(frozen=True)
class TaskPlan:
    """The tasks of a run: blocks of consecutive shards, and shards simulated at once."""

    blocks: list[list[int]]
    batch_shards: int
    task_memory_bytes: int
    worker_limit_bytes: int | None  # the smallest advertised; None: none advertised


def task_memory_bytes(params: RunParameters, batch_shards: int, visits_per_patient: float) -> int:
    """Peak memory of a task simulating `batch_shards` shards at once and writing them."""
    patients = min(params.n_patients, batch_shards * params.shard_size)
    rows = patients * (1 + visits_per_patient)
    return WORKER_BYTES + WRITER_LANE_BYTES + int(rows * WORKER_BYTES_PER_ROW)


def worker_limits(scheduler_info: Mapping[str, Any]) -> tuple[int, int | None]:
    """Worker threads in all, and the smallest memory limit per thread a worker advertises
    (None: none advertises one)."""
    workers = scheduler_info.get("workers", {})
    threads = sum(int(w.get("nthreads", 1) or 1) for w in workers.values())
    limits = [  # a worker's limit is shared by the tasks its threads run at once
        int(w["memory_limit"]) // max(1, int(w.get("nthreads", 1) or 1))
        for w in workers.values()
        if w.get("memory_limit")
    ]
    return threads, (min(limits) if limits else None)


def plan_tasks(
    params: RunParameters,
    shards: Sequence[int],
    threads: int,
    limit_bytes: int | None,
    visits_per_patient: float,
) -> TaskPlan:
    """Blocks for the `shards` still to simulate, sized to the workers' memory and count."""
    batch = len(plan_blocks(params)[0])
    if limit_bytes is not None:
        while batch > 1 and task_memory_bytes(params, batch, visits_per_patient) > (
            MEMORY_SHARE * limit_bytes
        ):
            batch //= 2
        needed = task_memory_bytes(params, batch, visits_per_patient)
        if needed > MEMORY_SHARE * limit_bytes:
            raise ClusterError(
                f"one shard of {params.shard_size:,} patients needs about {needed / MiB:,.0f} "
                f"MiB, more than half of a worker thread's share of its memory limit "
                f"({limit_bytes / MiB:,.0f} MiB); use a smaller --shard-size, fewer threads "
                "per worker or workers with more memory"
            )
    per_task = max(batch, math.ceil(len(shards) / max(1, threads * TASKS_PER_THREAD)))
    blocks: list[list[int]] = []
    for run in _consecutive(sorted(shards)):
        blocks += [run[i : i + per_task] for i in range(0, len(run), per_task)]
    return TaskPlan(
        blocks=blocks,
        batch_shards=batch,
        task_memory_bytes=task_memory_bytes(params, batch, visits_per_patient),
        worker_limit_bytes=limit_bytes,
    )


def _consecutive(shards: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for shard in shards:
        if runs and runs[-1][-1] == shard - 1:
            runs[-1].append(shard)
        else:
            runs.append([shard])
    return runs
