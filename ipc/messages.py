"""Every message that crosses a process boundary, as msgspec structs.

Three streams, each a tagged union so a decoder knows what it got:

- the data channel (workers -> writer): `PatientBatch` with numpy columns as raw buffers, and
  `FinishRun` from the supervisor;
- control pipes: supervisor <-> worker (`Assign`, `Stop` / `WorkerReady`, `TaskDone`,
  `WorkerFailed`) and writer -> supervisor (`WriterReady`, `ShardWritten`, `SenderClosed`,
  `WriterFinished`, `WriterFailed`);
- the metrics stream (supervisor -> any subscriber): `MetricsSample`.

Columns travel as Arrow-ready buffers (values, and a validity bitmap only where there are
nulls) so the receiver wraps them without copying. Structs are frozen; `gc=False` where a
struct holds no containers that could form cycles. New fields get defaults and go last.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "Assign",
    "ChannelMessage",
    "ColumnBuffers",
    "FinishRun",
    "MetricsSample",
    "PatientBatch",
    "ProcessMemory",
    "SenderClosed",
    "ShardWritten",
    "StageReport",
    "StageTimes",
    "Stop",
    "SupervisorToWorker",
    "TableBuffers",
    "TaskDone",
    "WorkerFailed",
    "WorkerReady",
    "WorkerToSupervisor",
    "WriterFailed",
    "WriterFinished",
    "WriterReady",
    "WriterToSupervisor",
]

RunStatus = Literal["running", "completed", "failed", "cancelled"]


class _Message(msgspec.Struct, frozen=True, kw_only=True, tag=True, array_like=True):
    """Base of tagged messages: positional on the wire, tagged with the class name."""


class ColumnBuffers(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One Arrow column: values buffer and validity bitmap (empty when there are no nulls).

    Booleans arrive bit-packed (Arrow layout). On receipt both are memoryviews into the
    channel slot, valid until the slot is released.
    """

    null_count: int
    data: memoryview
    validity: memoryview


class TableBuffers(msgspec.Struct, frozen=True, array_like=True):
    """The rows of one table in a batch, columns in schema order."""

    length: int
    columns: list[ColumnBuffers]


class PatientBatch(_Message, frozen=True, kw_only=True):
    """All or part of one shard's output.

    A shard too large for a channel slot is split by patient into `part_count` parts; parts
    are deterministic, so a retried shard produces the same parts and the writer can keep the
    first copy of each. `stats` are this part's statistics (msgpack-encoded
    `engine.stats.shard_stats.ShardStatsState`, opaque here); `format_version` says which
    column set (`engine.columns.patient_columns`) the patients buffers are in.
    """

    shard: int
    part: int
    part_count: int
    attempt: int
    first_patient: int
    patients: TableBuffers
    visits: TableBuffers
    stats: bytes
    format_version: int = 1  # run-directory format: which patients columns `patients` holds


class FinishRun(_Message, frozen=True, kw_only=True):
    """Supervisor to writer: no more batches; close the files and record `status`."""

    status: RunStatus
    error: str = ""


ChannelMessage = PatientBatch | FinishRun


# --- supervisor <-> worker -------------------------------------------------------------------


class Assign(_Message, frozen=True, kw_only=True):
    """Simulate these consecutive shards; `attempt` counts earlier tries (0 for the first)."""

    task: int
    shards: list[int]
    attempt: int


class Stop(_Message, frozen=True, kw_only=True):
    """Finish the shard in hand, send nothing more, close the channel and exit."""


SupervisorToWorker = Assign | Stop


class WorkerReady(_Message, frozen=True, kw_only=True):
    """The worker is connected to the channel and waits for work."""

    worker: int
    pid: int


class TaskDone(_Message, frozen=True, kw_only=True):
    """Every batch of the task is in the channel (a `StageReport` was sent just before)."""

    task: int
    visits: int
    memory_errors: int = 0  # MemoryErrors met; each halved the shards simulated at once
    batch_shards: int = 0  # shards simulated at once when the task ended


class WorkerFailed(_Message, frozen=True, kw_only=True):
    """The task raised; `traceback` is the formatted exception from the worker."""

    task: int
    shards: list[int]
    pid: int
    error: str
    traceback: str


class StageTimes(msgspec.Struct, frozen=True, kw_only=True):
    """Where one process (or one thread of the writer) has spent its time since it started.

    `stages` maps a stage to its seconds, in the order the process's stages run, ending with
    ``other``: `wall_s` less every named stage, so the stages add up to `wall_s` exactly.
    `name` says which process (``worker-2``, ``writer``, ``writer lane 1``); `role` is its
    kind (``worker`` or ``writer``).
    """

    name: str
    role: str
    pid: int
    wall_s: float
    stages: dict[str, float]


class StageReport(_Message, frozen=True, kw_only=True):
    """A worker's or the writer's stage timings so far (cumulative, since it started).

    Sent at most about twice a second while the process works, and once more at its end.
    """

    times: list[StageTimes]


WorkerToSupervisor = WorkerReady | TaskDone | WorkerFailed | StageReport


# --- writer -> supervisor --------------------------------------------------------------------


class WriterReady(_Message, frozen=True, kw_only=True):
    """The writer is receiving on the channel."""

    pid: int


class ShardWritten(_Message, frozen=True, kw_only=True):
    """A shard part is on disk (in a part file that may still be open)."""

    shard: int
    part: int
    part_count: int
    patients: int
    visits: int
    bytes_written: int


class SenderClosed(_Message, frozen=True, kw_only=True):
    """Everything `sender` put in the channel has been handled; it will send no more."""

    sender: int


class WriterFinished(_Message, frozen=True, kw_only=True):
    """The writer closed its files and wrote the index and manifest.

    `times` are the writer's final stage timings, one entry per thread (see `StageTimes`).
    """

    status: RunStatus
    bytes_on_disk: int
    times: list[StageTimes] = []


class WriterFailed(_Message, frozen=True, kw_only=True):
    """The writer cannot go on (disk full, I/O error); files it had open were discarded."""

    error: str
    traceback: str


WriterToSupervisor = (
    WriterReady | ShardWritten | SenderClosed | WriterFinished | WriterFailed | StageReport
)


# --- metrics ---------------------------------------------------------------------------------


class ProcessMemory(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Resident memory of one process of the run."""

    role: Literal["supervisor", "worker", "writer", "dask-worker"]
    pid: int
    rss_bytes: int


class MetricsSample(msgspec.Struct, frozen=True, kw_only=True):
    """One snapshot of a run, published at least twice a second while it runs.

    `patients_per_s` and `visits_per_s` are averages over this process's whole run so far;
    `recent_patients_per_s` is the rate over about the last 10 s
    (`engine.pipeline.sampling.RecentRate`) and `eta_s` is the patients left at that rate:
    None until a rate is known, and None once the run has stopped.
    """

    run_id: str
    time: float
    elapsed_s: float
    status: RunStatus
    shards_done: int
    shards_total: int
    patients_done: int
    patients_total: int
    visits_written: int
    patients_per_s: float
    visits_per_s: float
    eta_s: float | None
    processes: list[ProcessMemory]
    channel_slots: int
    channel_in_use: int
    channel_peak: int
    bytes_written: int
    # The whole process tree against the real limit (engine.memory); defaults for old senders.
    memory_used_bytes: int = 0
    memory_limit_bytes: int = 0
    memory_limit_source: str = ""
    memory_level: Literal["green", "yellow", "red"] = "green"
    paused: bool = False  # no new shards handed out until memory drops (yellow or red)
    batch_shards: int = 0  # most shards handed to a worker at once (lowered at red)
    recent_patients_per_s: float = 0.0  # over about the last 10 s; 0 from older senders
    # Where each worker and writer thread has spent its time so far (`StageTimes`).
    stages: list[StageTimes] = []

    @property
    def rss_total_bytes(self) -> int:
        """Sum of the resident memory of every process of the run."""
        return sum(p.rss_bytes for p in self.processes)

    @property
    def fraction_done(self) -> float:
        """Share of patients written, 0..1."""
        return self.patients_done / self.patients_total if self.patients_total else 1.0
