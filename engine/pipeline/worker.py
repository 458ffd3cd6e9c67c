"""A worker process: simulate the shards it is assigned and put them in the channel.

Tasks come from the supervisor one at a time over the worker's pipe. Each shard is encoded
into one or more channel batches (see `engine.pipeline.batches`); a full channel blocks the
worker, which is how a slow writer slows the workers down. An exception in a task is
reported as `WorkerFailed` with its traceback and the worker waits for the next task; a
`Stop` between shards ends the worker after the shard in hand.

A `MemoryError` while simulating halves the number of shards the worker simulates at once
(for the rest of its life) and retries the rest of the task; outputs do not depend on the
grouping, so the rows are unchanged. A single shard that does not fit fails the task.
"""

from __future__ import annotations

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
from engine.pipeline.processes import prepare_child
from engine.profiling import ProcessProfile, ProfileTarget
from ipc.channel import ChannelClosedError, ChannelSender, ChannelSpec
from ipc.messages import Assign, Stop, SupervisorToWorker, TaskDone, WorkerFailed, WorkerReady

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
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(SupervisorToWorker)


class _Stopped(Exception):
    pass


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
    with ProcessProfile.of_process(config.profile, f"worker-{worker_id}"):
        _serve(config, worker_id, conn)


def _serve(config: WorkerConfig, worker_id: int, conn: Connection) -> None:
    """Simulate the tasks the supervisor sends until it says stop or goes away."""
    model = compile_model(config.protocol)
    params = config.parameters
    limit = _BatchLimit()
    sender: ChannelSender | None = None
    try:
        conn.send_bytes(_ENCODER.encode(WorkerReady(worker=worker_id, pid=os.getpid())))
        while True:
            message = _DECODER.decode(conn.recv_bytes())
            if isinstance(message, Stop):
                return
            try:
                if sender is None:
                    sender = _connect(config, worker_id, conn)
                done = _simulate(config, model, params, message, sender, conn, limit)
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
            conn.send_bytes(_ENCODER.encode(done))
    except (EOFError, OSError):
        return  # the supervisor is gone: nobody is left to tell
    finally:
        if sender is not None:
            sender.close()


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


class _TaskTally:
    """What a task has done so far: visits sent and seconds spent per step."""

    def __init__(self) -> None:
        self.visits = 0
        self.simulate_s = self.encode_s = self.send_s = 0.0


def _simulate(
    config: WorkerConfig,
    model: CompiledModel,
    params: RunParameters,
    task: Assign,
    sender: ChannelSender,
    conn: Connection,
    limit: _BatchLimit,
) -> TaskDone:
    if config.fail_shard in task.shards and task.attempt < config.fail_attempts:
        raise RuntimeError(
            f"injected failure in shard {config.fail_shard} (attempt {task.attempt})"
        )
    tally = _TaskTally()
    errors_before = limit.memory_errors
    remaining = list(task.shards)
    while remaining:
        batch = remaining[: limit.shards or len(remaining)]
        started = time.perf_counter()
        try:
            outputs = _simulate_batch(config, model, params, batch)
        except MemoryError:
            # Halve and try again; one shard is the least there is (shards are the unit of
            # determinism), so a shard that alone does not fit fails the task.
            if len(batch) == 1:
                raise
            limit.shards = max(1, len(batch) // 2)
            limit.memory_errors += 1
            continue
        finally:
            tally.simulate_s += time.perf_counter() - started
        del remaining[: len(batch)]
        _send(config, params, task, outputs, sender, conn, tally)
        del outputs
    return TaskDone(
        task=task.task,
        visits=tally.visits,
        simulate_s=tally.simulate_s,
        encode_s=tally.encode_s,
        send_s=tally.send_s,
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
    conn: Connection,
    tally: _TaskTally,
) -> None:
    """Encode the batch's shards and put them in the channel; stop early on `Stop`."""
    for output in outputs:
        started = time.perf_counter()
        batches = encode_shard(output, task.attempt, params.horizon_days, config.channel.slot_bytes)
        tally.encode_s += time.perf_counter() - started
        started = time.perf_counter()
        for batch in batches:
            sender.send(batch)
        tally.send_s += time.perf_counter() - started
        tally.visits += output.visit_count
        if conn.poll(0) and isinstance(_DECODER.decode(conn.recv_bytes()), Stop):
            raise _Stopped
