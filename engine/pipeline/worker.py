"""A worker process: simulate the shards it is assigned and put them in the channel.

Tasks come from the supervisor one at a time over the worker's pipe. Each shard is encoded
into one or more channel batches (see `engine.pipeline.batches`); a full channel blocks the
worker, which is how a slow writer slows the workers down. An exception in a task is
reported as `WorkerFailed` with its traceback and the worker waits for the next task; a
`Stop` between shards ends the worker after the shard in hand.
"""

from __future__ import annotations

import os
import time
import traceback
from multiprocessing.connection import Connection

import msgspec

from engine.kernel import simulate_shards
from engine.parameters import RunParameters
from engine.pipeline.batches import encode_shard
from engine.pipeline.processes import prepare_child
from engine.protocol import Protocol
from engine.tables import ModelTables, compile_protocol
from ipc.channel import ChannelSender, ChannelSpec
from ipc.messages import Assign, Stop, SupervisorToWorker, TaskDone, WorkerFailed, WorkerReady

__all__ = ["WorkerConfig", "worker_main"]


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What every worker needs to simulate any shard of the run."""

    channel: ChannelSpec
    protocol: Protocol
    parameters: RunParameters
    fail_shard: int | None = None  # fault injection: raise while simulating this shard...
    fail_attempts: int = 0  # ...on its first this-many attempts


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(SupervisorToWorker)


class _Stopped(Exception):
    pass


def worker_main(config: WorkerConfig, worker_id: int, conn: Connection) -> None:
    """Entry point of a worker process."""
    prepare_child(f"worker-{worker_id}")
    tables = compile_protocol(config.protocol)
    params = config.parameters
    with ChannelSender(config.channel, worker_id) as sender:
        conn.send_bytes(_ENCODER.encode(WorkerReady(worker=worker_id, pid=os.getpid())))
        while True:
            try:
                message = _DECODER.decode(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the supervisor is gone
            if isinstance(message, Stop):
                return
            try:
                done = _simulate(config, tables, params, message, sender, conn)
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


def _simulate(
    config: WorkerConfig,
    tables: ModelTables,
    params: RunParameters,
    task: Assign,
    sender: ChannelSender,
    conn: Connection,
) -> TaskDone:
    if config.fail_shard in task.shards and task.attempt < config.fail_attempts:
        raise RuntimeError(
            f"injected failure in shard {config.fail_shard} (attempt {task.attempt})"
        )
    started = time.perf_counter()
    outputs = simulate_shards(tables, params, task.shards)
    simulate_s = time.perf_counter() - started
    encode_s = send_s = 0.0
    visits = 0
    for output in outputs:
        started = time.perf_counter()
        batches = encode_shard(output, task.attempt, params.horizon_days, config.channel.slot_bytes)
        encode_s += time.perf_counter() - started
        started = time.perf_counter()
        for batch in batches:
            sender.send(batch)
        send_s += time.perf_counter() - started
        visits += output.visit_count
        if conn.poll(0) and isinstance(_DECODER.decode(conn.recv_bytes()), Stop):
            raise _Stopped
    return TaskDone(
        task=task.task, visits=visits, simulate_s=simulate_s, encode_s=encode_s, send_s=send_s
    )
