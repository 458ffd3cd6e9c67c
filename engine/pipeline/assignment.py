"""Handing out shards: the blocks still to simulate, the shards written, the workers' hands.

The supervisor keeps one `ShardQueue` of (shards, attempt) blocks and one `ShardProgress`
of what the writer reported. A task is cut from the head of the queue, skipping shards
already complete and at most `batch_limit` long (the memory policy halves it at red); a
task whose worker failed or died goes back to the head, split into runs of consecutive
shards, with its attempt counted up. The writer keeps the first copy of every shard part,
so a shard simulated twice is still written once.

Does not cover: when a task is handed out or a retry gives up (`engine.pipeline.supervisor`),
the memory level (`engine.pipeline.memory_policy`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from engine.manifest import Checkpoint
from ipc.messages import Assign, ShardWritten

__all__ = ["ShardProgress", "ShardQueue", "WorkerHandle", "describe_shards"]


@dataclass(eq=False)
class WorkerHandle:
    """The supervisor's view of one worker process and the task in its hands."""

    id: int
    process: object
    conn: Connection
    pid: int | None = None
    task: Assign | None = None
    ready: bool = False
    stopping: bool = False
    exited: bool = False


@dataclass
class ShardProgress:
    """Shards written so far, counted from the writer's `ShardWritten` reports.

    A shard may arrive in several parts (`part_count`); it is complete once all are in.
    """

    complete: set[int] = field(default_factory=set)
    parts: dict[int, set[int]] = field(default_factory=dict)
    patients: int = 0
    visits: int = 0
    bytes_written: int = 0

    def record(self, message: ShardWritten) -> None:
        """Count one written shard part."""
        self.bytes_written = message.bytes_written
        parts = self.parts.setdefault(message.shard, set())
        parts.add(message.part)
        self.patients += message.patients
        self.visits += message.visits
        if len(parts) == message.part_count:
            self.complete.add(message.shard)
            del self.parts[message.shard]

    def restore(self, checkpoint: Checkpoint) -> None:
        """Count the shard parts a resumed run's checkpoint holds as written."""
        for location in checkpoint.shards:
            self.record(
                ShardWritten(
                    shard=location.shard,
                    part=location.part,
                    part_count=location.part_count,
                    patients=location.patients,
                    visits=location.visits,
                    bytes_written=0,
                )
            )
        self.bytes_written = sum(
            part.patients_bytes + part.visits_bytes for part in checkpoint.parts
        )


class ShardQueue:
    """Blocks of shards waiting for a worker, each with the attempt it is on."""

    def __init__(self) -> None:
        self._pending: deque[tuple[list[int], int]] = deque()
        self._task_ids = itertools.count(1)

    def add_blocks(self, blocks: Iterable[Sequence[int]]) -> None:
        """Queue planned blocks at their first attempt."""
        for block in blocks:
            self._pending.append((list(block), 0))

    def next_task(self, complete: set[int], batch_limit: int) -> Assign | None:
        """The next task of at most `batch_limit` shards not in `complete`; None when done."""
        while self._pending:
            shards, attempt = self._pending.popleft()
            shards = [s for s in shards if s not in complete]
            if len(shards) > batch_limit:
                self._pending.appendleft((shards[batch_limit:], attempt))
                shards = shards[:batch_limit]
            if shards:
                return Assign(task=next(self._task_ids), shards=shards, attempt=attempt)
        return None

    def requeue(self, shards: list[int], attempt: int) -> None:
        """Put `shards` back at the head of the queue, to be tried next at `attempt`."""
        for run in _consecutive_runs(shards):
            self._pending.appendleft((run, attempt))


def describe_shards(shards: list[int]) -> str:
    """``0-3, 7`` for shards 0, 1, 2, 3 and 7: for messages."""
    return ", ".join(
        f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in _consecutive_runs(shards)
    )


def _consecutive_runs(shards: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for shard in sorted(shards):
        if runs and runs[-1][-1] == shard - 1:
            runs[-1].append(shard)
        else:
            runs.append([shard])
    return runs
