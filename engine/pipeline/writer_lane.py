"""A writer lane: one thread of the writer process with its own pair of rolling part files.

The writer's receiving thread hands each lane batches (and `ROLL` to close its files for a
checkpoint); the lane writes Parquet, hands the batch's statistics to the writer
(`record`), frees the channel slot and rolls its files when they are full (`roll`). Parquet
encoding releases the GIL, so lanes write in parallel. Each lane times its stages
(`LANE_STAGES`); the receiving thread reports them.

`writer` is the writer process's `_Writer` (engine.pipeline.writer): its `config`,
`profile` (a lane profiles its own thread), `record`, `roll` and `new_counts`.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from engine.pipeline.stage_clock import StageClock
from ipc.channel import Received

__all__ = ["LANE_STAGES", "ROLL", "WriterLane"]

ROLL = "roll"  # a lane job: close the open part files now, so a checkpoint covers them
LANE_STAGES = ("waiting for batches", "Parquet", "statistics merge", "releasing", "checkpoint")


class WriterLane(threading.Thread):
    """One writing thread and its own pair of rolling part files."""

    def __init__(self, writer: Any, number: int, parts: Any) -> None:
        super().__init__(name=f"writer-lane-{number}", daemon=True)
        self.writer = writer
        self.parts = parts
        self.jobs: queue.SimpleQueue[tuple[Received, Any] | str | None] = queue.SimpleQueue()
        self.dispatched = 0  # written by the receiving thread only
        self.done = 0  # written by this lane only
        self.clock = StageClock(f"writer lane {number + 1}", "writer", LANE_STAGES)
        # Statistics of the rows in this lane's open files, handed over when they close.
        self.pending_counts = writer.new_counts()
        self.pending_sketches: list[tuple[int, int, int, Any]] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        with self.writer.profile.thread(self.name):
            self._run()

    def _run(self) -> None:
        clock = self.clock
        delay = self.writer.config.delay_per_batch_s
        try:
            while True:
                with clock.stage("waiting for batches"):
                    job = self.jobs.get()
                if job is None:
                    break
                if job == ROLL:
                    with clock.stage("checkpoint"):
                        self.writer.roll(self)
                    continue
                received, decoded = job  # type: ignore[misc]
                with clock.stage("Parquet"):
                    location = self.parts.write(decoded)
                    if delay:
                        time.sleep(delay)
                with clock.stage("statistics merge"):
                    self.writer.record(decoded, location, self.parts.bytes_written)
                with clock.stage("releasing"):
                    del decoded
                    received.release()
                self.done += 1
                if self.parts.should_roll():
                    with clock.stage("checkpoint"):
                        self.writer.roll(self)
            with clock.stage("checkpoint"):
                self.writer.roll(self)
        except BaseException as exc:  # reported by the receiving thread
            self.failure = exc
            self._release_queued()

    @property
    def queued(self) -> int:
        """Batches handed to this lane and not yet written."""
        return self.dispatched - self.done

    def _release_queued(self) -> None:
        """After a failure: free the slots of queued batches, so no worker stays blocked."""
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, tuple):
                job[0].release()
