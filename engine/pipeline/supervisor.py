"""The supervisor: owns a streaming run from start to the last cleaned-up segment.

Covers the run's lifecycle: claiming the run directory, writing the manifest, opening the
channel and the metrics stream, starting one writer and W workers; the loop that watches
every process's pipe and sentinel and publishes metrics; deciding how the run ends
(completed, cancelled on Ctrl-C, SIGTERM or a request on the metrics socket, or failed);
and, on every exit path, stopping children (wait, stack dump, SIGKILL), removing the shared
memory and recording the end.

Each other concern has a module of its own, in `engine.pipeline`: `options`; the shard
queue and progress (`assignment`); the workers, their tasks and retries (`workers`); the
writer (`writer_link`); memory policy (`memory_policy`); metrics samples (`sampling`);
manifest and registry records (`records`); signals (`signals`); resume and restart
(`takeover`); starting and stopping processes (`processes`); entry points (`launch`).
Does not cover: simulating (`engine.pipeline.worker`), writing files (`engine.pipeline.writer`),
the transport (`ipc.channel`, `ipc.metrics`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

import msgspec

from engine.errors import (
    AmdsimError,
    WorkerCrashedError,
    WriterFailedError,
)
from engine.manifest import Manifest, read_manifest, write_manifest
from engine.memory.estimate import RunEstimate
from engine.memory.monitor import MemoryMonitor
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters, validate_parameters
from engine.model.shards import plan_blocks
from engine.pipeline.assignment import ShardProgress, ShardQueue, WorkerHandle
from engine.pipeline.memory_policy import MemoryPolicy, check_resources
from engine.pipeline.options import PipelineOptions, resolve_options
from engine.pipeline.processes import stop_processes
from engine.pipeline.records import record_abnormal_end, record_in_registry, running_manifest
from engine.pipeline.sampling import SampleRecorder, process_memory
from engine.pipeline.signals import cancel_on_signals
from engine.pipeline.takeover import Mode, checkpoint_every, claim_directory, take_over
from engine.pipeline.workers import WorkerPool
from engine.pipeline.writer_link import WriterLink
from engine.run_dir import RunLock, RunPaths
from ipc.channel import Channel, ChannelSender
from ipc.messages import FinishRun, MetricsSample, StageTimes
from ipc.metrics import MetricsPublisher, metrics_socket_path

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)
OWNER_SENDER = 0
FINISH_TIMEOUT_S = 3.0  # after stopping: how long the writer may take to close its files
PROFILE_WRITE_S = 30.0  # with --profile: more time to exit, as each child writes its profile


class Supervisor:
    """One streaming run. Call `start()`, then `run()`; `cancel()` may come from any thread.

    `mode` is ``new`` (an empty or absent directory), ``resume`` (carry on from the run's
    checkpoint, see `engine.resume`) or ``restart`` (discard the run's files, start over).
    """

    def __init__(
        self,
        protocol: AnyProtocol,
        params: RunParameters,
        run_dir: Path,
        options: PipelineOptions | None = None,
        mode: Mode = "new",
        monitor: MemoryMonitor | None = None,
    ) -> None:
        if mode == "new":
            # The CLI and run_simulation check too; a library caller of run_pipeline must
            # get the same refusal (a rate too slow for the horizon once piled patients
            # up on its last day).
            validate_parameters(params)
        options = resolve_options(options or PipelineOptions(), params)
        self.protocol = protocol
        self.params = params
        self.options = options
        self.mode = mode
        self._lock: RunLock | None = None
        self.discarded: list[str] = []  # what a resume removed (files the crash left)
        self.paths = RunPaths(Path(run_dir))
        self.run_id = self.paths.root.name
        self._samples = SampleRecorder(self.run_id, params)
        self._progress = ShardProgress()
        self._queue = ShardQueue()
        self._status: str = "running"
        self._error = ""
        self._error_traceback = ""
        self._failure: type[AmdsimError] | None = None
        self._stop_deadline: float | None = None
        self._cancel_reason: str | None = None
        self.cancelled_by: signal.Signals | None = None  # the signal that cancelled the run
        self._restore_signals: Callable[[], None] = lambda: None
        self._wake_read, self._wake_write = socket.socketpair()
        self.monitor = monitor or MemoryMonitor(root_pid=os.getpid())
        self.estimate: RunEstimate | None = None
        self.memory_at_start = 0  # the tree's resident bytes when the estimate was checked
        self._memory_policy = MemoryPolicy(batch_limit=len(plan_blocks(params)[0]))
        record_stages = self._samples.record_stages
        self._writer = WriterLink(self._progress, fail=self._fail, on_stages=record_stages)
        self._pool = WorkerPool(
            self._progress,
            self._queue,
            self._memory_policy,
            send=self._send,
            fail=self._fail,
            on_stages=record_stages,
        )

    # -- public -------------------------------------------------------------------------

    @property
    def resumed_patients(self) -> int:
        """Patients already on disk when this (resumed) run started."""
        return self._samples.resumed_patients

    @property
    def resumed_visits(self) -> int:
        """Visits already on disk when this (resumed) run started."""
        return self._samples.resumed_visits

    @property
    def metrics_address(self) -> str:
        """Where subscribers connect for this run's `MetricsSample`s."""
        return str(self._metrics_path)

    @property
    def latest_sample(self) -> MetricsSample | None:
        """The last metrics sample published, None before the first."""
        return self._samples.latest

    @property
    def peak_rss_total(self) -> int:
        """The largest resident memory of the whole run seen in a sample, in bytes."""
        return self._samples.peak_rss_total

    @property
    def peak_rss_by_role(self) -> dict[str, int]:
        """The largest single process of each role (supervisor, worker, writer), in bytes."""
        return self._samples.peak_rss_by_role

    @property
    def stage_times(self) -> list[StageTimes]:
        """Where each worker and writer thread has spent its time (the latest reports)."""
        return list(self._samples.stage_times.values())

    @property
    def memory_events(self) -> dict[str, int]:
        """Pauses, batch reductions and worker `MemoryError`s of this run so far."""
        return self._memory_policy.events

    def start(self) -> None:
        """Take the run directory, write the manifest, open the channel and metrics stream,
        start the processes. On failure everything started is stopped again.

        Raises `MemoryBudgetError` or `DiskSpaceError` first, touching nothing, when the
        run's estimate does not fit (unless `PipelineOptions.check_resources` is off).
        """
        try:
            if self.options.check_resources:
                self.estimate, self.memory_at_start = check_resources(
                    self.protocol,
                    self.params,
                    self.options,
                    self.paths,
                    self.monitor,
                    resuming=self.mode == "resume",
                )
            claim_directory(self.paths, self.mode)
            self._lock = RunLock(self.paths)
        except BaseException:  # nothing started yet but the wake-up socket pair
            self._wake_read.close()
            self._wake_write.close()
            raise
        # From here a signal cancels instead of killing this process half-way (children that
        # a group signal reaches ignore it); `run()` restores the handlers at its end.
        self._restore_signals = cancel_on_signals(self._cancel_by_signal)
        try:
            self._start()
        except BaseException:
            self._restore_signals()
            with contextlib.suppress(Exception):
                self._shutdown()
            self._lock.release()
            raise

    def _start(self) -> None:
        taken = take_over(self.paths, self.mode, self.options)
        self.options, self.discarded = taken.options, taken.discarded
        previous = taken.previous
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
        self.manifest = running_manifest(
            self.paths,
            self.protocol,
            self.params,
            options,
            str(self._metrics_path),
            checkpoint_every(options, previous, self.mode),
            previous if self.mode == "resume" else None,
            restarted=previous if self.mode == "restart" else None,
        )
        write_manifest(self.paths.manifest, self.manifest)
        record_in_registry(self.paths, self.manifest, register=self.mode != "resume")
        if taken.checkpoint is not None:
            self._progress.restore(taken.checkpoint)
            self._samples.resumed_patients = self._progress.patients
            self._samples.resumed_visits = self._progress.visits
        self._queue.add_blocks(plan_blocks(self.params))
        self._writer.start(
            self.channel.spec, self.paths, self.manifest, options, resume=self.mode == "resume"
        )
        self._pool.configure(self.channel.spec, self.protocol, self.params, options)
        for _ in range(options.workers):
            self._pool.start_worker()

    def run(self) -> Manifest:
        """Drive the run to its end and return the final manifest.

        Raises `WorkerCrashedError` or `WriterFailedError` (after cleaning up) if it failed;
        a cancelled run returns its manifest with status ``cancelled``.
        """
        final: Manifest | None = None
        try:
            self._loop()
        finally:
            self._shutdown()
            self._restore_signals()
            with contextlib.suppress(Exception):
                final = read_manifest(self.paths.manifest)
                if self.stage_times:
                    final = msgspec.structs.replace(final, stage_timings=self.stage_times)
                    write_manifest(self.paths.manifest, final)
                record_in_registry(self.paths, final, quiet=self._failure is not None)
            if self._lock is not None:
                self._lock.release()
        if self._failure is WorkerCrashedError:
            raise WorkerCrashedError(self._error, self._error_traceback)
        if self._failure is not None:
            raise self._failure(self._error)
        return final if final is not None else read_manifest(self.paths.manifest)

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop (thread- and signal-safe); it ends with status ``cancelled``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def _cancel_by_signal(self, sig: signal.Signals) -> None:
        if self.cancelled_by is None:
            self.cancelled_by = sig
        self.cancel(f"interrupted by {sig.name}")

    # -- main loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        next_sample = time.monotonic()
        while True:
            if self._cancel_reason is not None and self._status == "running":
                self._begin_stop("cancelled", self._cancel_reason)
            if (
                self._status == "running"
                and len(self._progress.complete) == self.params.shard_count
            ):
                self._begin_stop("completed")
            writer = self._writer
            if writer.finished or writer.failed:
                return
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                log.warning("the writer did not finish within %.1f s of stopping", FINISH_TIMEOUT_S)
                return
            now = time.monotonic()
            if now >= next_sample:
                self._publish_sample()
                next_sample = now + self.options.metrics_interval_s
            live = self._pool.live()
            watched = [w.conn for w in live] + [w.process.sentinel for w in live]
            watched += [writer.conn, writer.process.sentinel, self._wake_read]
            ready = wait(watched, timeout=max(0.0, next_sample - time.monotonic()))
            if self._wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    self._wake_read.recv(4096)
            if writer.conn in ready:
                writer.drain()
            for worker in live:
                if worker.conn in ready:
                    self._pool.drain(worker)
            for worker in live:
                if worker.process.sentinel in ready and not worker.exited:
                    self._pool.exited(worker)
            if writer.process.sentinel in ready and not writer.finished:
                writer.exited()

    def _tasks_in_flight(self) -> int:
        return self._pool.tasks_in_flight()

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
        self._pool.stop_all()
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
        processes = [w.process for w in self._pool.workers.values()]
        if self._writer.process is not None:
            processes.append(self._writer.process)
        try:
            with contextlib.suppress(Exception):
                self._publish_sample()
            # A child that was told to stop exits at once, but its interpreter's last garbage
            # collection can take over a second on a loaded machine (seen in CI): warn, dump
            # stacks and kill only after 3 s. Children that exit sooner are not waited for.
            # A profiled child renders its profile on the way out (long runs: seconds).
            grace_s = 3.0 + (PROFILE_WRITE_S if self.options.profile else 0.0)
            stop_processes(processes, grace_s=grace_s, term_s=0.5)
            self._pool.collect_last_reports()
        finally:
            for name in ("channel", "publisher"):
                resource = getattr(self, name, None)
                if resource is not None:
                    resource.close()
            conns = [w.conn for w in self._pool.workers.values()]
            conns += [self._writer.conn]
            for conn in conns:
                if conn is not None:
                    conn.close()
            self._wake_read.close()
            self._wake_write.close()
        if hasattr(self, "manifest") and not self._writer.finished:
            self._record_abnormal_end()

    def _record_abnormal_end(self) -> None:
        """The writer did not finish: mark the run cancelled or failed, without temporaries.

        If the manifest cannot be written, the first cause stays the run's error (the
        writer's, when it reported one) and the run is left to show as ``interrupted``.
        """
        status = "cancelled" if self._status == "cancelled" and self._failure is None else "failed"
        error = self._error or "the writer did not finish"
        try:
            record_abnormal_end(self.paths, self.manifest, status, error)
        except OSError as exc:
            unrecorded = (
                f"could not record the run as {status} ({exc.strerror or exc}); "
                "it shows as interrupted and can be resumed"
            )
            if self._failure is None:
                self._failure, self._error = WriterFailedError, f"{error}; {unrecorded}"
            else:
                self._error = f"{self._error}; {unrecorded}"
            return
        if self._failure is None and status == "failed":
            self._failure, self._error = WriterFailedError, error

    # -- metrics ------------------------------------------------------------------------

    def _publish_sample(self) -> None:
        memory = self.monitor.snapshot()
        roles = {os.getpid(): "supervisor"}
        roles.update({w.pid: "worker" for w in self._pool.live() if w.pid})
        writer = self._writer.process
        if writer is not None and writer.pid and not self._writer.finished:
            roles[writer.pid] = "writer"
        sample = self._samples.sample(
            status=self._status,
            progress=self._progress,
            channel_slots=self.channel.spec.slot_count,
            channel=None if self.channel.closed else self.channel.statistics(),
            memory=memory,
            processes=process_memory(memory, roles),
            paused=self._memory_policy.paused,
            batch_shards=self._memory_policy.batch_limit,
        )
        self.publisher.publish(sample)
        if self._status == "running" and self._memory_policy.react(memory.level):
            self._pool.assign_all()

    def _send(self, worker: WorkerHandle, message: msgspec.Struct) -> None:
        with contextlib.suppress(OSError, EOFError):  # the worker is gone; its sentinel will tell
            worker.conn.send_bytes(_ENCODER.encode(message))


_ENCODER = msgspec.msgpack.Encoder()
