"""A worker process: simulate the shards it is assigned and put them in the channel.

Tasks come from the supervisor one at a time over the worker's pipe. Each shard is encoded
into one or more channel batches (see `engine.pipeline.batches`); a full channel blocks the
worker, which is how a slow writer slows the workers down. An exception in a task is
reported as `WorkerFailed` with its traceback and the worker waits for the next task; a
`Stop` between shards ends the worker after the shard in hand.

A `MemoryError` while simulating halves the number of shards the worker simulates at once
(for the rest of its life) and retries the rest of the task; outputs do not depend on the
grouping, so the rows are unchanged. A single shard that does not fit fails the task.

The worker times its stages (`engine.pipeline.stage_clock`: start-up, waiting for work,
simulate, statistics, encode, waiting for a channel slot) and reports them to the supervisor
at most every `REPORT_EVERY_S`, before each `TaskDone` and when it stops.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from multiprocessing.connection import Connection

import msgspec

from engine.columns import ShardOutput
from engine.model.any_protocol import AnyProtocol
from engine.model.interface import CompiledModel, compile_model
from engine.model.parameters import RunParameters
from engine.pipeline.batches import encode_shard
from engine.pipeline.processes import prepare_child, seconds_since_start
from engine.pipeline.stage_clock import StageClock
from engine.profiling import ProcessProfile, ProfileTarget
from ipc.channel import ChannelClosedError, ChannelSender, ChannelSpec
from ipc.messages import (
    Assign,
    StageReport,
    Stop,
    SupervisorToWorker,
    TaskDone,
    WorkerFailed,
    WorkerReady,
)

__all__ = ["WorkerConfig", "worker_main"]


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What every worker needs to simulate any shard of the run."""

    channel: ChannelSpec
    protocol: AnyProtocol
    parameters: RunParameters
    fail_shard: int | None = None  # fault injection: raise while simulating this shard...
    fail_attempts: int = 0  # ...on its first this-many attempts
    memory_error_above_shards: int | None = None  # fault injection: MemoryError on bigger batches
    profile: ProfileTarget | None = None  # where this worker writes its profile


CONNECT_TIMEOUT_S = 30.0  # the writer listens from its start; this is for a slow start
CONNECT_STEP_S = 0.25
REPORT_EVERY_S = 0.5  # stage timings go to the supervisor at most this often while working
STAGES = (
    "start-up",
    "waiting for work",
    "simulate",
    "statistics",
    "encode",
    "waiting for a slot",
)
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(SupervisorToWorker)


class _Stopped(Exception):
    pass


class _StageReporter:
    """The worker's stage clock and when its timings were last sent to the supervisor."""

    def __init__(self, worker_id: int, conn: Connection) -> None:
        self.clock = StageClock(f"worker-{worker_id}", "worker", STAGES)
        self.conn = conn
        self.last_sent = time.monotonic()

    def report(self, force: bool = False) -> None:
        """Send the timings so far, if forced or `REPORT_EVERY_S` has passed."""
        now = time.monotonic()
        if not force and now - self.last_sent < REPORT_EVERY_S:
            return
        self.last_sent = now
        report = StageReport(times=[self.clock.snapshot()])
        self.conn.send_bytes(_ENCODER.encode(report))


class _BatchLimit:
    """Most shards this worker simulates at once; halved by every MemoryError, never raised."""

    def __init__(self) -> None:
        self.shards: int | None = None  # None: as many as a task holds
        self.memory_errors = 0


def worker_main(config: WorkerConfig, worker_id: int, conn: Connection) -> None:
    """Entry point of a worker process.

    The worker connects to the channel with its first task, so a worker that never gets one
    (a run that needs fewer, or one that ends while it starts) never touches the channel;
    told to stop, or finding the supervisor gone, it exits quietly. With a profile
    directory, the worker's whole life is profiled into ``worker-<id>.speedscope.json``.
    """
    prepare_child(f"worker-{worker_id}")
    reporter = _StageReporter(worker_id, conn)
    reporter.clock.backdate("start-up", seconds_since_start())  # the interpreter and imports
    with ProcessProfile.of_process(config.profile, f"worker-{worker_id}"):
        _serve(config, worker_id, reporter)


def _serve(config: WorkerConfig, worker_id: int, reporter: _StageReporter) -> None:
    """Simulate the tasks the supervisor sends until it says stop or goes away."""
    clock, conn = reporter.clock, reporter.conn
    with clock.stage("start-up"):
        model = compile_model(config.protocol)
    params = config.parameters
    limit = _BatchLimit()
    sender: ChannelSender | None = None
    try:
        conn.send_bytes(_ENCODER.encode(WorkerReady(worker=worker_id, pid=os.getpid())))
        while True:
            with clock.stage("waiting for work"):
                message = _DECODER.decode(conn.recv_bytes())
            if isinstance(message, Stop):
                return
            try:
                if sender is None:
                    with clock.stage("start-up"):
                        sender = _connect(config, worker_id, conn)
                done = _simulate(config, model, params, message, sender, reporter, limit)
            except _Stopped:
                return
            except Exception as exc:
                failure = WorkerFailed(
                    task=message.task,
                    shards=message.shards,
                    pid=os.getpid(),
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
                conn.send_bytes(_ENCODER.encode(failure))
                continue
            reporter.report(force=True)
            conn.send_bytes(_ENCODER.encode(done))
    except (EOFError, OSError):
        return  # the supervisor is gone: nobody is left to tell
    finally:
        if sender is not None:
            sender.close()
        with contextlib.suppress(OSError, EOFError):  # the last word: this worker's timings
            reporter.report(force=True)


def _connect(config: WorkerConfig, worker_id: int, conn: Connection) -> ChannelSender:
    """This worker's sender; raises `_Stopped` if the supervisor says stop meanwhile.

    Tries in short steps, so a `Stop` (the run ended, the writer stopped listening) is seen
    within a fraction of a second instead of after the whole connect timeout.
    """
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return ChannelSender(config.channel, worker_id, connect_timeout_s=CONNECT_STEP_S)
        except (ChannelClosedError, EOFError, OSError):
            if conn.poll(CONNECT_STEP_S) and isinstance(_DECODER.decode(conn.recv_bytes()), Stop):
                raise _Stopped from None
            if time.monotonic() >= deadline:
                raise


def _simulate(
    config: WorkerConfig,
    model: CompiledModel,
    params: RunParameters,
    task: Assign,
    sender: ChannelSender,
    reporter: _StageReporter,
    limit: _BatchLimit,
) -> TaskDone:
    if config.fail_shard in task.shards and task.attempt < config.fail_attempts:
        raise RuntimeError(
            f"injected failure in shard {config.fail_shard} (attempt {task.attempt})"
        )
    visits = 0
    errors_before = limit.memory_errors
    remaining = list(task.shards)
    while remaining:
        batch = remaining[: limit.shards or len(remaining)]
        try:
            with reporter.clock.stage("simulate"):
                outputs = _simulate_batch(config, model, params, batch)
        except MemoryError:
            # Halve and try again; one shard is the least there is (shards are the unit of
            # determinism), so a shard that alone does not fit fails the task.
            if len(batch) == 1:
                raise
            limit.shards = max(1, len(batch) // 2)
            limit.memory_errors += 1
            continue
        del remaining[: len(batch)]
        visits += _send(config, params, task, outputs, sender, reporter)
        del outputs
    return TaskDone(
        task=task.task,
        visits=visits,
        memory_errors=limit.memory_errors - errors_before,
        batch_shards=limit.shards or len(task.shards),
    )


def _simulate_batch(
    config: WorkerConfig, model: CompiledModel, params: RunParameters, shards: list[int]
) -> list[ShardOutput]:
    too_many = config.memory_error_above_shards
    if too_many is not None and len(shards) > too_many:
        raise MemoryError(f"injected: {len(shards)} shards at once is more than {too_many}")
    return model.simulate_shards(params, shards)


def _send(
    config: WorkerConfig,
    params: RunParameters,
    task: Assign,
    outputs: list[ShardOutput],
    sender: ChannelSender,
    reporter: _StageReporter,
) -> int:
    """Encode the batch's shards and put them in the channel; the visits sent.

    Stops early (`_Stopped`) on `Stop`.
    """
    clock, conn = reporter.clock, reporter.conn
    visits = 0
    for output in outputs:
        with clock.stage("encode"):
            batches = encode_shard(
                output, task.attempt, params.horizon_days, config.channel.slot_bytes, clock
            )
        with clock.stage("waiting for a slot"):
            for batch in batches:
                sender.send(batch)
        visits += output.visit_count
        reporter.report()
        if conn.poll(0) and isinstance(_DECODER.decode(conn.recv_bytes()), Stop):
            raise _Stopped
    return visits
