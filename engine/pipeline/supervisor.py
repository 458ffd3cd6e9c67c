"""The supervisor: owns a streaming run from start to the last cleaned-up segment.

Covers: creating the run directory and manifest, the channel and the metrics stream;
starting one writer and W workers; handing out blocks of shards as workers become free;
watching every process's sentinel; re-running the shards of a worker that failed or died
(bounded attempts; the writer keeps the first copy of every shard part, so rows are written
once); cancelling on Ctrl-C, SIGTERM or a request on the metrics socket; and, on every exit
path, stopping children (wait, SIGTERM, SIGKILL) and removing the shared memory.

Does not cover: simulating (`engine.pipeline.worker`), writing files (`engine.pipeline.writer`),
the transport (`ipc.channel`, `ipc.metrics`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Literal

import msgspec
import psutil

from engine.errors import (
    AmdsimError,
    ParameterError,
    RunStateError,
    WorkerCrashedError,
    WriterFailedError,
)
from engine.manifest import (
    ROW_GROUP_PATIENTS,
    Checkpoint,
    Compression,
    Manifest,
    read_manifest,
    write_manifest,
)
from engine.memory.estimate import RunEstimate, check_run_fits, estimate_run
from engine.memory.monitor import MemoryLevel, MemoryMonitor, MemorySnapshot
from engine.parameters import RunParameters
from engine.pipeline.processes import CONTEXT, start_process, stop_processes
from engine.pipeline.worker import WorkerConfig, worker_main
from engine.pipeline.writer import WriterConfig, writer_main
from engine.protocol import Protocol
from engine.registry import Registry
from engine.run_dir import RUN_ID_PATTERN, RunLock, RunPaths
from engine.shards import plan_blocks
from ipc.channel import Channel, ChannelSender, bounded_credits
from ipc.messages import (
    Assign,
    FinishRun,
    MetricsSample,
    ProcessMemory,
    SenderClosed,
    ShardWritten,
    Stop,
    TaskDone,
    WorkerFailed,
    WorkerReady,
    WorkerToSupervisor,
    WriterFailed,
    WriterFinished,
    WriterReady,
    WriterToSupervisor,
)
from ipc.metrics import MetricsPublisher, metrics_socket_path

__all__ = [
    "PipelineOptions",
    "Supervisor",
    "default_workers",
    "default_writer_lanes",
    "resolve_options",
]

log = logging.getLogger(__name__)
OWNER_SENDER = 0
DEFAULT_CHECKPOINT_EVERY = 1_000_000  # patients: at most a few seconds of work lost to a crash
FINISH_TIMEOUT_S = 3.0  # after stopping: how long the writer may take to close its files


def default_writer_lanes() -> int:
    """Writer threads: one per two CPUs (a lane writes about as fast as two workers simulate), 1-4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus // 2))


def default_workers() -> int:
    """One fewer than the CPUs this process may use (the writer needs one), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


class PipelineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a streaming run is executed; none of these change its output rows.

    Parameters
    ----------
    slot_bytes, slots_per_worker
        Channel slot size and how many slots each worker may fill ahead of the writer.
    roll_bytes
        Part files are closed and a new pair started once the open pair reaches this size.
    max_attempts
        Tries per shard before the run fails; also bounds worker restarts.
    row_group_patients
        Patients per Parquet row group: what one patient lookup reads (at least 1).
    checkpoint_every
        Patients between checkpoints (part files are closed and listed); None: the run's
        own setting when resuming, else `DEFAULT_CHECKPOINT_EVERY`; 0: only when files roll.
    """

    workers: int = 0  # 0: default_workers()
    writer_lanes: int = 0  # 0: default_writer_lanes()
    compression: Compression = "zstd"
    slot_bytes: int = 4 << 20
    slots_per_worker: int = 0  # 0: a block of shards plus one, within SENDER_SLOT_BYTES
    roll_bytes: int = 128 << 20
    max_attempts: int = 3
    checkpoint_every: int | None = None
    row_group_patients: int = ROW_GROUP_PATIENTS
    metrics_interval_s: float = 0.5
    live_stats_interval_s: float = 1.0  # how often the writer rewrites live-stats.msgpack
    check_resources: bool = True  # estimate memory and disk first; refuse what does not fit
    # Fault injection, for tests only.
    free_disk_bytes: int | None = None  # pretend the run's file system has this much free
    worker_memory_error_above_shards: int | None = None  # MemoryError on bigger batches
    writer_fail_after_bytes: int | None = None
    worker_fail_shard: int | None = None
    worker_fail_attempts: int = 0


def resolve_options(options: PipelineOptions, params: RunParameters) -> PipelineOptions:
    """`options` with every "0: default" filled in for this run, checked.

    What a supervisor would run with; also what estimates of the run are made from.
    """
    if options.workers == 0:
        options = msgspec.structs.replace(options, workers=default_workers())
    if options.workers < 1:
        raise ParameterError(f"workers must be at least 1, got {options.workers}")
    if options.writer_lanes == 0:
        options = msgspec.structs.replace(options, writer_lanes=default_writer_lanes())
    if options.slots_per_worker == 0:
        shards_per_block = len(plan_blocks(params)[0])
        slots = bounded_credits(shards_per_block + 1, options.slot_bytes)
        options = msgspec.structs.replace(options, slots_per_worker=slots)
    if options.row_group_patients < 1:
        raise ParameterError(
            f"row_group_patients must be at least 1, got {options.row_group_patients}"
        )
    if options.checkpoint_every is not None and options.checkpoint_every < 0:
        raise ParameterError(
            f"checkpoint_every must be 0 (off) or a number of patients, got "
            f"{options.checkpoint_every}"
        )
    return options


@dataclass(eq=False)
class _Worker:
    id: int
    process: object
    conn: Connection
    pid: int | None = None
    task: Assign | None = None
    ready: bool = False
    stopping: bool = False
    exited: bool = False


@dataclass
class _Progress:
    complete: set[int] = field(default_factory=set)
    parts: dict[int, set[int]] = field(default_factory=dict)
    patients: int = 0
    visits: int = 0
    bytes_written: int = 0


class Supervisor:
    """One streaming run. Call `start()`, then `run()`; `cancel()` may come from any thread.

    `mode` is ``new`` (an empty or absent directory), ``resume`` (carry on from the run's
    checkpoint, see `engine.resume`) or ``restart`` (discard the run's files, start over).
    """

    def __init__(
        self,
        protocol: Protocol,
        params: RunParameters,
        run_dir: Path,
        options: PipelineOptions | None = None,
        mode: Literal["new", "resume", "restart"] = "new",
        monitor: MemoryMonitor | None = None,
    ) -> None:
        options = resolve_options(options or PipelineOptions(), params)
        self.protocol = protocol
        self.params = params
        self.options = options
        self.mode = mode
        self._lock: RunLock | None = None
        self._resumed_patients = 0
        self._resumed_visits = 0
        self.discarded: list[str] = []  # what a resume removed (files the crash left)
        self.paths = RunPaths(Path(run_dir))
        self.run_id = self.paths.root.name
        self.started_at = time.monotonic()
        self.latest_sample: MetricsSample | None = None
        self.peak_rss_total = 0
        self.peak_rss_by_role: dict[str, int] = {}
        self._progress = _Progress()
        self.worker_timings = {"simulate": 0.0, "encode": 0.0, "send": 0.0}
        self.writer_timings: dict[str, float] = {}
        self._pending: deque[tuple[list[int], int]] = deque()
        self._workers: dict[int, _Worker] = {}
        self._next_worker_id = 1
        self._restarts = 0
        self._task_ids = iter(range(1, 1 << 62))
        self._status: str = "running"
        self._error = ""
        self._error_traceback = ""
        self._failure: type[AmdsimError] | None = None
        self._stop_deadline: float | None = None
        self._writer_finished = False
        self._writer_failed = False
        self._cancel_reason: str | None = None
        self._wake_read, self._wake_write = socket.socketpair()
        self.monitor = monitor or MemoryMonitor(root_pid=os.getpid())
        self.estimate: RunEstimate | None = None
        self.memory_at_start = 0  # the tree's resident bytes when the estimate was checked
        self._memory_level = MemoryLevel.GREEN
        self._batch_limit = len(plan_blocks(params)[0])  # most shards per task; halved at red
        self.memory_events = {"pauses": 0, "batch_reductions": 0, "worker_memory_errors": 0}

    # -- public -------------------------------------------------------------------------

    @property
    def resumed_patients(self) -> int:
        """Patients already on disk when this (resumed) run started."""
        return self._resumed_patients

    @property
    def resumed_visits(self) -> int:
        """Visits already on disk when this (resumed) run started."""
        return self._resumed_visits

    @property
    def metrics_address(self) -> str:
        """Where subscribers connect for this run's `MetricsSample`s."""
        return str(self._metrics_path)

    def start(self) -> None:
        """Take the run directory, write the manifest, open the channel and metrics stream,
        start the processes. On failure everything started is stopped again.

        Raises `MemoryBudgetError` or `DiskSpaceError` first, touching nothing, when the
        run's estimate does not fit (unless `PipelineOptions.check_resources` is off).
        """
        if self.options.check_resources:
            self._check_resources()
        if self.mode == "new":
            if self.paths.root.exists() and any(self.paths.root.iterdir()):
                raise ParameterError(
                    f"run directory {self.paths.root} already exists and is not empty"
                )
            self.paths.root.mkdir(parents=True, exist_ok=True)
        elif not self.paths.manifest.is_file():
            raise RunStateError(f"{self.paths.root} is not a run directory (no manifest.json)")
        self._lock = RunLock(self.paths)
        try:
            self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                self._shutdown()
            self._lock.release()
            raise

    def _start(self) -> None:
        previous, checkpoint = self._take_over()
        self._metrics_path = metrics_socket_path(self.paths.root)
        options = self.options
        self.channel = Channel(
            slot_count=options.slots_per_worker * options.workers + 1,
            slot_bytes=options.slot_bytes,
            credits_per_sender=options.slots_per_worker,
            owner_sender=OWNER_SENDER,
            tag=self.run_id,
        )
        self.publisher = MetricsPublisher(
            self._metrics_path, on_request=lambda _: self.cancel("cancel requested")
        )
        self.manifest = Manifest(
            run_id=self.run_id,
            status="running",
            protocol=self.protocol,
            parameters=self.params,
            shard_count=self.params.shard_count,
            compression=options.compression,
            workers=options.workers,
            created=datetime.datetime.now(datetime.UTC),
            package_version=_package_version(),
            supervisor_pid=os.getpid(),
            supervisor_started=psutil.Process().create_time(),
            metrics_address=str(self._metrics_path),
            slot_bytes=options.slot_bytes,
            checkpoint_every=self._checkpoint_every(previous),
        )
        if previous is not None and self.mode == "resume":
            self.manifest = msgspec.structs.replace(
                self.manifest, created=previous.created, resumes=previous.resumes + 1
            )
        write_manifest(self.paths.manifest, self.manifest)
        self._record_in_registry(self.manifest, register=self.mode != "resume")
        if checkpoint is not None:
            self._restore_progress(checkpoint)
        for block in plan_blocks(self.params):
            self._pending.append((list(block), 0))
        self._start_writer()
        for _ in range(options.workers):
            self._start_worker()

    def run(self) -> Manifest:
        """Drive the run to its end and return the final manifest.

        Raises `WorkerCrashedError` or `WriterFailedError` (after cleaning up) if it failed;
        a cancelled run returns its manifest with status ``cancelled``.
        """
        restore = self._install_signal_handlers()
        try:
            self._loop()
        finally:
            restore()
            self._shutdown()
            with contextlib.suppress(Exception):
                self._record_in_registry(read_manifest(self.paths.manifest))
            if self._lock is not None:
                self._lock.release()
        if self._failure is WorkerCrashedError:
            raise WorkerCrashedError(self._error, self._error_traceback)
        if self._failure is not None:
            raise self._failure(self._error)
        return read_manifest(self.paths.manifest)

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop (thread- and signal-safe); it ends with status ``cancelled``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def _check_resources(self) -> None:
        """Estimate the run's peak memory and disk use; refuse it when either does not fit.

        A resume needs disk only for what is not written yet.
        """
        self.estimate = estimate_run(self.protocol, self.params, self.options)
        estimate = self.estimate
        if self.mode == "resume" and self.paths.root.is_dir():
            already = self.paths.bytes_on_disk()
            estimate = dataclasses.replace(
                estimate, disk_bytes=max(0, estimate.disk_bytes - already)
            )
        self.memory_at_start = check_run_fits(
            estimate, self.monitor, self.paths.root, self.options.free_disk_bytes
        ).usage_bytes
        log.info("run estimate: %s", estimate.describe())

    def _take_over(self) -> tuple[Manifest | None, Checkpoint | None]:
        """Under the run's lock: prepare a resume or a restart (nothing to do for a new run).

        Returns the run's previous manifest and, when resuming, the checkpoint to go on from.
        A resume keeps the run's compression and slot size: shards must be cut as before.
        """
        from engine import resume  # noqa: PLC0415 - only resumes and restarts need it

        if self.mode == "new":
            return None, None
        previous = resume.read_run_manifest(self.paths)
        if self.mode == "restart":
            resume.wipe_run_directory(self.paths)
            return previous, None
        resume.check_resumable(self.paths, previous)
        checkpoint = resume.load_checkpoint(self.paths, previous)
        self.discarded = resume.discard_unlisted_files(self.paths, checkpoint)
        if self.discarded:
            log.info("discarded what the interruption left: %s", ", ".join(self.discarded))
        self.options = msgspec.structs.replace(
            self.options, compression=previous.compression, slot_bytes=previous.slot_bytes
        )
        return previous, checkpoint

    def _checkpoint_every(self, previous: Manifest | None) -> int:
        if self.options.checkpoint_every is not None:
            return self.options.checkpoint_every
        if previous is not None and self.mode == "resume":
            return previous.checkpoint_every
        return DEFAULT_CHECKPOINT_EVERY

    def _restore_progress(self, checkpoint: Checkpoint) -> None:
        """Count the shard parts the checkpoint holds as written; only the rest are assigned."""
        for location in checkpoint.shards:
            self._shard_written(
                ShardWritten(
                    shard=location.shard,
                    part=location.part,
                    part_count=location.part_count,
                    patients=location.patients,
                    visits=location.visits,
                    bytes_written=0,
                )
            )
        self._resumed_patients = self._progress.patients
        self._resumed_visits = self._progress.visits
        self._progress.bytes_written = sum(
            part.patients_bytes + part.visits_bytes for part in checkpoint.parts
        )

    # -- processes ----------------------------------------------------------------------

    def _start_writer(self) -> None:
        config = WriterConfig(
            channel=self.channel.spec,
            run_dir=str(self.paths.root),
            manifest_json=msgspec.json.encode(self.manifest),
            compression=self.options.compression,
            roll_bytes=self.options.roll_bytes,
            lanes=self.options.writer_lanes,
            checkpoint_every=self.manifest.checkpoint_every,
            row_group_patients=self.options.row_group_patients,
            resume=self.mode == "resume",
            fail_after_bytes=self.options.writer_fail_after_bytes,
            live_stats_interval_s=self.options.live_stats_interval_s,
        )
        ours, theirs = CONTEXT.Pipe()
        self.writer = CONTEXT.Process(
            target=writer_main, args=(config, theirs), name="amdsim-writer", daemon=True
        )
        start_process(self.writer)
        theirs.close()
        self.writer_conn = ours

    def _start_worker(self) -> None:
        worker_id = self._next_worker_id
        self._next_worker_id += 1
        config = WorkerConfig(
            channel=self.channel.spec,
            protocol=self.protocol,
            parameters=self.params,
            fail_shard=self.options.worker_fail_shard,
            fail_attempts=self.options.worker_fail_attempts,
            memory_error_above_shards=self.options.worker_memory_error_above_shards,
        )
        ours, theirs = CONTEXT.Pipe()
        process = CONTEXT.Process(
            target=worker_main,
            args=(config, worker_id, theirs),
            name=f"amdsim-worker-{worker_id}",
            daemon=True,
        )
        start_process(process)
        theirs.close()
        self._workers[worker_id] = _Worker(
            id=worker_id, process=process, conn=ours, pid=process.pid
        )

    # -- main loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        next_sample = time.monotonic()
        worker_decoder = msgspec.msgpack.Decoder(WorkerToSupervisor)
        writer_decoder = msgspec.msgpack.Decoder(WriterToSupervisor)
        while True:
            if self._cancel_reason is not None and self._status == "running":
                self._begin_stop("cancelled", self._cancel_reason)
            if (
                self._status == "running"
                and len(self._progress.complete) == self.params.shard_count
            ):
                self._begin_stop("completed")
            if self._writer_finished or self._writer_failed:
                return
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                log.warning("the writer did not finish within %.1f s of stopping", FINISH_TIMEOUT_S)
                return
            now = time.monotonic()
            if now >= next_sample:
                self._publish_sample()
                next_sample = now + self.options.metrics_interval_s
            live = [w for w in self._workers.values() if not w.exited]
            watched = [w.conn for w in live] + [w.process.sentinel for w in live]
            watched += [self.writer_conn, self.writer.sentinel, self._wake_read]
            ready = wait(watched, timeout=max(0.0, next_sample - time.monotonic()))
            if self._wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    self._wake_read.recv(4096)
            if self.writer_conn in ready:
                self._drain_writer(writer_decoder)
            for worker in live:
                if worker.conn in ready:
                    self._drain_worker(worker, worker_decoder)
            for worker in live:
                if worker.process.sentinel in ready and not worker.exited:
                    self._worker_exited(worker)
            if self.writer.sentinel in ready and not self._writer_finished:
                self._drain_writer(writer_decoder)
                if not self._writer_finished and not self._writer_failed:
                    self._writer_crashed()

    def _drain_worker(self, worker: _Worker, decoder: msgspec.msgpack.Decoder) -> None:
        while not worker.exited and worker.conn.poll(0):
            try:
                message = decoder.decode(worker.conn.recv_bytes())
            except (EOFError, OSError):
                return
            if isinstance(message, WorkerReady):
                worker.ready = True
                worker.pid = message.pid
                self._assign(worker)
            elif isinstance(message, TaskDone):
                worker.task = None
                self.worker_timings["simulate"] += message.simulate_s
                self.worker_timings["encode"] += message.encode_s
                self.worker_timings["send"] += message.send_s
                self.memory_events["worker_memory_errors"] += message.memory_errors
                self._assign(worker)
            elif isinstance(message, WorkerFailed):
                task = worker.task
                worker.task = None
                log.warning(
                    "worker %s failed on shards %s: %s", worker.id, message.shards, message.error
                )
                if task is not None:
                    self._retry(task, message.error, message.traceback)
                self._assign(worker)

    def _drain_writer(self, decoder: msgspec.msgpack.Decoder) -> None:
        while self.writer_conn.poll(0):
            try:
                message = decoder.decode(self.writer_conn.recv_bytes())
            except (EOFError, OSError):
                return
            if isinstance(message, ShardWritten):
                self._shard_written(message)
            elif isinstance(message, WriterFinished):
                self._writer_finished = True
                self.writer_timings = message.timings
            elif isinstance(message, WriterFailed):
                self._writer_failed = True
                self._fail(
                    WriterFailedError, f"the writer failed: {message.error}", message.traceback
                )
            elif isinstance(message, WriterReady | SenderClosed):
                pass

    def _shard_written(self, message: ShardWritten) -> None:
        progress = self._progress
        progress.bytes_written = message.bytes_written
        parts = progress.parts.setdefault(message.shard, set())
        parts.add(message.part)
        progress.patients += message.patients
        progress.visits += message.visits
        if len(parts) == message.part_count:
            progress.complete.add(message.shard)
            del progress.parts[message.shard]

    def _assign(self, worker: _Worker) -> None:
        if self._status != "running" or worker.stopping or worker.task is not None:
            return
        if self._paused and self._tasks_in_flight() > 0:
            return  # memory is high: wait for it to drop; one task always runs, so no stall
        while self._pending:
            shards, attempt = self._pending.popleft()
            shards = [s for s in shards if s not in self._progress.complete]
            if len(shards) > self._batch_limit:
                self._pending.appendleft((shards[self._batch_limit :], attempt))
                shards = shards[: self._batch_limit]
            if shards:
                worker.task = Assign(task=next(self._task_ids), shards=shards, attempt=attempt)
                self._send(worker, worker.task)
                return

    @property
    def _paused(self) -> bool:
        return self._memory_level is not MemoryLevel.GREEN

    def _tasks_in_flight(self) -> int:
        return sum(1 for w in self._workers.values() if w.task is not None and not w.exited)

    def _react_to_memory(self, level: MemoryLevel) -> None:
        """Yellow or red: hand out no new shards while any are in hand. Red: also halve the
        shards per task. Back to green: hand out work to every idle worker again."""
        was_paused = self._paused
        self._memory_level = level
        if level is MemoryLevel.RED and self._batch_limit > 1:
            self._batch_limit //= 2
            self.memory_events["batch_reductions"] += 1
            log.warning("memory is red: at most %d shards per task from now on", self._batch_limit)
        if self._paused and not was_paused:
            self.memory_events["pauses"] += 1
            log.warning("memory is %s: handing out no new shards until it drops", level)
        elif was_paused and not self._paused:
            log.info("memory is green again: handing out shards")
            for worker in self._workers.values():
                if worker.ready and not worker.exited:
                    self._assign(worker)

    def _retry(self, task: Assign, error: str, traceback: str) -> None:
        """Queue the task's unfinished shards again, or fail the run if they have had enough."""
        remaining = [s for s in task.shards if s not in self._progress.complete]
        if not remaining:
            return
        attempt = task.attempt + 1
        if attempt >= self.options.max_attempts:
            self._fail(
                WorkerCrashedError,
                f"shards {_ranges(remaining)} failed on all {self.options.max_attempts} attempts; "
                f"last error: {error}",
                traceback,
            )
            return
        for run in _consecutive_runs(remaining):
            self._pending.appendleft((run, attempt))
        for other in self._workers.values():
            if other.ready and not other.exited and other.task is None:
                self._assign(other)

    def _worker_exited(self, worker: _Worker) -> None:
        worker.exited = True
        self._drain_worker(worker, msgspec.msgpack.Decoder(WorkerToSupervisor))
        if worker.stopping:
            return
        code = worker.process.exitcode
        log.warning("worker %s (pid %s) died with exit code %s", worker.id, worker.pid, code)
        if worker.task is not None:
            self._retry(
                worker.task, f"worker {worker.id} (pid {worker.pid}) died with exit code {code}", ""
            )
            worker.task = None
        if self._status != "running":
            return
        if self._restarts >= self.options.max_attempts * self.options.workers:
            self._fail(
                WorkerCrashedError,
                f"workers died {self._restarts + 1} times (last exit code {code})",
                "",
            )
            return
        self._restarts += 1
        self._start_worker()

    def _writer_crashed(self) -> None:
        self._writer_failed = True
        code = self.writer.exitcode
        self._fail(WriterFailedError, f"the writer process died with exit code {code}", "")

    # -- stopping -----------------------------------------------------------------------

    def _fail(self, error: type[AmdsimError], message: str, traceback: str) -> None:
        if self._failure is None:
            self._failure, self._error, self._error_traceback = error, message, traceback
        if self._status == "running":
            self._begin_stop("failed", message)

    def _begin_stop(self, status: str, error: str = "") -> None:
        self._status = status
        self._error = self._error or error
        self._stop_deadline = time.monotonic() + FINISH_TIMEOUT_S
        for worker in self._workers.values():
            if not worker.exited:
                worker.stopping = True
                self._send(worker, Stop())
        # The channel cannot end before the owner's sender has connected and closed (see
        # ChannelSpec.owner_sender), so it connects only now, to say how the run ends;
        # start-up never waits for the writer to listen. FinishRun travels inline: no slot.
        with (
            contextlib.suppress(Exception),
            ChannelSender(
                self.channel.spec, OWNER_SENDER, connect_timeout_s=2.0, credits=0
            ) as owner,
        ):
            owner.send(FinishRun(status=status, error=error), timeout_s=1.0)

    def _shutdown(self) -> None:
        """Every exit path: children stopped, segment unlinked, socket closed.

        Also after a start that failed half-way, so it checks what exists.
        """
        processes = [w.process for w in self._workers.values()]
        writer = getattr(self, "writer", None)
        if writer is not None:
            processes.append(writer)
        try:
            with contextlib.suppress(Exception):
                self._publish_sample()
            stop_processes(processes, grace_s=1.0, term_s=0.5)
        finally:
            for name in ("channel", "publisher"):
                resource = getattr(self, name, None)
                if resource is not None:
                    resource.close()
            conns = [w.conn for w in self._workers.values()]
            conns += [getattr(self, "writer_conn", None)]
            for conn in conns:
                if conn is not None:
                    conn.close()
            self._wake_read.close()
            self._wake_write.close()
        if hasattr(self, "manifest") and not self._writer_finished:
            self._record_abnormal_end()

    def _record_in_registry(self, manifest: Manifest, register: bool = False) -> None:
        """List the run in the registry of its runs root; a registry problem never fails a run.

        Only directories named like run ids are listed (``--out some/name`` is not).
        """
        if not RUN_ID_PATTERN.match(self.paths.root.name):
            return
        try:
            registry = Registry(self.paths.root.parent)
            if register:
                registry.register(manifest)
            else:
                registry.update(manifest)
        except (AmdsimError, OSError) as exc:
            log.warning("could not record run %s in the registry: %s", self.run_id, exc)

    def _record_abnormal_end(self) -> None:
        """The writer did not finish: remove its temporaries and mark the run failed."""
        for path in self.paths.temporary_files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        status = "cancelled" if self._status == "cancelled" and self._failure is None else "failed"
        error = self._error or "the writer did not finish"
        write_manifest(
            self.paths.manifest,
            msgspec.structs.replace(
                self.manifest,
                status=status,
                error=error,
                finished=datetime.datetime.now(datetime.UTC),
                bytes_on_disk=self.paths.bytes_on_disk(),
            ),
        )
        if self._failure is None and status == "failed":
            self._failure, self._error = WriterFailedError, error

    def _install_signal_handlers(self) -> Callable[[], None]:
        """Ctrl-C and SIGTERM cancel the run; returns the function restoring the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(
                sig,
                lambda signum, frame: self.cancel(f"interrupted by {signal.Signals(signum).name}"),
            )

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    # -- metrics ------------------------------------------------------------------------

    def _publish_sample(self) -> None:
        elapsed = time.monotonic() - self.started_at
        progress = self._progress
        patients_now = progress.patients - self._resumed_patients  # simulated by this process
        patients_per_s = patients_now / elapsed if elapsed > 0 else 0.0
        visits_per_s = (progress.visits - self._resumed_visits) / elapsed if elapsed > 0 else 0.0
        remaining = self.params.n_patients - progress.patients
        channel = None if self.channel.closed else self.channel.statistics()
        memory = self.monitor.snapshot()
        sample = MetricsSample(
            run_id=self.run_id,
            time=time.time(),
            elapsed_s=elapsed,
            status=self._status,  # type: ignore[arg-type]
            shards_done=len(progress.complete),
            shards_total=self.params.shard_count,
            patients_done=progress.patients,
            patients_total=self.params.n_patients,
            visits_written=progress.visits,
            patients_per_s=patients_per_s,
            visits_per_s=visits_per_s,
            eta_s=remaining / patients_per_s if patients_per_s > 0 else None,
            processes=self._memory(memory),
            channel_slots=self.channel.spec.slot_count,
            channel_in_use=channel.in_use if channel else 0,
            channel_peak=channel.peak_in_use if channel else 0,
            bytes_written=progress.bytes_written,
            memory_used_bytes=memory.usage_bytes,
            memory_limit_bytes=memory.limit.bytes,
            memory_limit_source=memory.limit.source,
            memory_level=memory.level.value,
            paused=self._paused,
            batch_shards=self._batch_limit,
        )
        self.latest_sample = sample
        self.peak_rss_total = max(self.peak_rss_total, sample.rss_total_bytes)
        for process in sample.processes:  # the largest single process of each role
            peak = self.peak_rss_by_role.get(process.role, 0)
            self.peak_rss_by_role[process.role] = max(peak, process.rss_bytes)
        self.publisher.publish(sample)
        if self._status == "running":
            self._react_to_memory(memory.level)

    def _memory(self, snapshot: MemorySnapshot) -> list[ProcessMemory]:
        """Resident memory of the run's processes, by role, from the tree's measurement."""
        roles = {os.getpid(): "supervisor"}
        roles.update({w.pid: "worker" for w in self._workers.values() if not w.exited and w.pid})
        if self.writer.pid and not self._writer_finished:
            roles[self.writer.pid] = "writer"
        return [
            ProcessMemory(role=role, pid=pid, rss_bytes=snapshot.by_pid[pid])
            for pid, role in roles.items()
            if snapshot.by_pid.get(pid)  # an exited, not yet reaped process reports 0
        ]

    def _send(self, worker: _Worker, message: msgspec.Struct) -> None:
        with contextlib.suppress(OSError, EOFError):  # the worker is gone; its sentinel will tell
            worker.conn.send_bytes(_ENCODER.encode(message))


_ENCODER = msgspec.msgpack.Encoder()


def _consecutive_runs(shards: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for shard in sorted(shards):
        if runs and runs[-1][-1] == shard - 1:
            runs[-1].append(shard)
        else:
            runs.append([shard])
    return runs


def _ranges(shards: list[int]) -> str:
    return ", ".join(
        f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in _consecutive_runs(shards)
    )


def _package_version() -> str:
    try:
        return version("amdsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
