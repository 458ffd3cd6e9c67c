"""The run's worker processes: starting them, handing out tasks, retrying what failed.

Each worker asks for work (`WorkerReady`), simulates the task it is handed (`Assign`: a few
consecutive shards at one attempt) and reports `TaskDone` or `WorkerFailed`. A failed task,
or the task of a worker that died, goes back to the head of the queue with its attempt
counted up, until `max_attempts`; then the run fails with `WorkerCrashedError`. A dead
worker is replaced, at most `max_attempts` times the number of workers per run. While the
memory policy pauses, no new task is handed out as long as another one is in hand, so the
run slows down but never stalls.

Does not cover: the queue and the progress (`engine.pipeline.assignment`), the memory level
(`engine.pipeline.memory_policy`), the worker's side (`engine.pipeline.worker`), stopping
the processes (`engine.pipeline.processes`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import msgspec

from engine.errors import AmdsimError, WorkerCrashedError
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters
from engine.pipeline.assignment import ShardProgress, ShardQueue, WorkerHandle, describe_shards
from engine.pipeline.memory_policy import MemoryPolicy
from engine.pipeline.options import PipelineOptions
from engine.pipeline.processes import CONTEXT, describe_exit, start_process
from engine.pipeline.worker import WorkerConfig, worker_main
from ipc.channel import ChannelClosedError, ChannelSpec
from ipc.messages import (
    Assign,
    StageReport,
    StageTimes,
    Stop,
    TaskDone,
    WorkerFailed,
    WorkerReady,
    WorkerToSupervisor,
)

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)
_RECEIVER_GONE = f"{ChannelClosedError.__name__}:"
Fail = Callable[[type[AmdsimError], str, str], None]


class WorkerPool:
    """Worker processes of one run and the tasks in their hands.

    `send` delivers a message to a worker (the supervisor's, so a subclass may watch it);
    `fail` ends the run with an error; `on_stages` takes the stage timings workers report.
    `configure` must be called before `start_worker`.
    """

    def __init__(
        self,
        progress: ShardProgress,
        queue: ShardQueue,
        memory_policy: MemoryPolicy,
        send: Callable[[WorkerHandle, msgspec.Struct], None],
        fail: Fail,
        on_stages: Callable[[list[StageTimes]], None] = lambda _: None,
    ) -> None:
        self.workers: dict[int, WorkerHandle] = {}
        self.handing_out = True  # False once the run is stopping
        self._on_stages = on_stages
        self._progress = progress
        self._queue = queue
        self._memory_policy = memory_policy
        self._send = send
        self._fail = fail
        self._config: WorkerConfig | None = None
        self._max_attempts = 1
        self._max_restarts = 0
        self._next_id = 1
        self._restarts = 0
        self._decoder = msgspec.msgpack.Decoder(WorkerToSupervisor)

    def configure(
        self,
        channel: ChannelSpec,
        protocol: AnyProtocol,
        params: RunParameters,
        options: PipelineOptions,
    ) -> None:
        """What every worker is started with, and how many failures the run tolerates."""
        self._config = WorkerConfig(
            channel=channel,
            protocol=protocol,
            parameters=params,
            fail_shard=options.worker_fail_shard,
            fail_attempts=options.worker_fail_attempts,
            memory_error_above_shards=options.worker_memory_error_above_shards,
            profile=options.profile,
        )
        self._max_attempts = options.max_attempts
        self._max_restarts = options.max_attempts * options.workers

    def live(self) -> list[WorkerHandle]:
        """Workers whose process has not been seen to exit."""
        return [w for w in self.workers.values() if not w.exited]

    def start_worker(self) -> None:
        """Start one more worker process; it asks for work once it is up."""
        assert self._config is not None, "configure() first"
        worker_id = self._next_id
        self._next_id += 1
        ours, theirs = CONTEXT.Pipe()
        process = CONTEXT.Process(
            target=worker_main,
            args=(self._config, worker_id, theirs),
            name=f"amdsim-worker-{worker_id}",
            daemon=True,
        )
        start_process(process)
        theirs.close()
        self.workers[worker_id] = WorkerHandle(
            id=worker_id, process=process, conn=ours, pid=process.pid
        )

    def stop_all(self) -> None:
        """Hand out nothing more and ask every live worker to stop."""
        self.handing_out = False
        for worker in self.live():
            worker.stopping = True
            self._send(worker, Stop())

    def drain(self, worker: WorkerHandle) -> None:
        """Handle every message the worker has sent."""
        while not worker.exited and worker.conn.poll(0):
            try:
                message = self._decoder.decode(worker.conn.recv_bytes())
            except (EOFError, OSError):
                return
            if isinstance(message, WorkerReady):
                worker.ready = True
                worker.pid = message.pid
                self.assign(worker)
            elif isinstance(message, StageReport):
                self._on_stages(message.times)
            elif isinstance(message, TaskDone):
                worker.task = None
                self._memory_policy.events["worker_memory_errors"] += message.memory_errors
                self.assign(worker)
            elif isinstance(message, WorkerFailed):
                task = worker.task
                worker.task = None
                # A worker whose channel receiver is gone failed because the writer did; the
                # writer's own error is the run's one line, so this one is not shown (under
                # load it could arrive first and add a second, misleading line).
                level = (
                    logging.DEBUG if message.error.startswith(_RECEIVER_GONE) else logging.WARNING
                )
                log.log(
                    level,
                    "worker %s failed on shards %s: %s",
                    worker.id,
                    message.shards,
                    message.error,
                )
                if task is not None:
                    self._retry(task, message.error, message.traceback)
                self.assign(worker)

    def collect_last_reports(self) -> None:
        """Once the workers have stopped: the stage timings each sent as its last word."""
        for worker in self.workers.values():
            with contextlib.suppress(EOFError, OSError, msgspec.DecodeError):
                while worker.conn.poll(0):
                    message = self._decoder.decode(worker.conn.recv_bytes())
                    if isinstance(message, StageReport):
                        self._on_stages(message.times)

    def assign(self, worker: WorkerHandle) -> None:
        """Hand the worker its next task, if it is free and the run may go on."""
        if not self.handing_out or worker.stopping or worker.task is not None:
            return
        if self._memory_policy.paused and self.tasks_in_flight() > 0:
            return  # memory is high: wait for it to drop; one task always runs, so no stall
        task = self._queue.next_task(self._progress.complete, self._memory_policy.batch_limit)
        if task is not None:
            worker.task = task
            self._send(worker, task)

    def assign_all(self) -> None:
        """Hand out work to every worker that is up and free (after a pause or a retry)."""
        for worker in self.workers.values():
            if worker.ready and not worker.exited:
                self.assign(worker)

    def tasks_in_flight(self) -> int:
        """Tasks handed out and not yet done."""
        return sum(1 for w in self.workers.values() if w.task is not None and not w.exited)

    def exited(self, worker: WorkerHandle) -> None:
        """The worker's process ended: unless it was asked to, retry its task and replace it."""
        worker.exited = True
        self.drain(worker)
        if worker.stopping:
            return
        how = describe_exit(worker.process)  # type: ignore[arg-type]
        log.warning("worker %s (pid %s) %s", worker.id, worker.pid, how)
        if worker.task is not None:
            self._retry(worker.task, f"worker {worker.id} (pid {worker.pid}) {how}", "")
            worker.task = None
        if not self.handing_out:
            return
        if self._restarts >= self._max_restarts:
            self._fail(
                WorkerCrashedError,
                f"workers died {self._restarts + 1} times (the last {how})",
                "",
            )
            return
        self._restarts += 1
        self.start_worker()

    def _retry(self, task: Assign, error: str, traceback: str) -> None:
        """Queue the task's unfinished shards again, or fail the run if they have had enough."""
        remaining = [s for s in task.shards if s not in self._progress.complete]
        if not remaining:
            return
        attempt = task.attempt + 1
        if attempt >= self._max_attempts:
            self._fail(
                WorkerCrashedError,
                f"shards {describe_shards(remaining)} failed on all {self._max_attempts} "
                f"attempts; last error: {error}",
                traceback,
            )
            return
        self._queue.requeue(remaining, attempt)
        self.assign_all()
