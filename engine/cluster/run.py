"""A streaming run on a Dask distributed cluster: the same run directory, the same rows.

`ClusterRun` is the cluster's counterpart of the local `Supervisor`, with the same surface
(`start()`, `run()`, `cancel()`, a metrics address, what a resume found on disk), so the CLI
and the dashboard follow it the same way. It claims the run directory and its lock, writes
the manifest and registers the run, then submits one Dask task per block of consecutive
shards (`engine.cluster.task`); tasks write their own part files and return only their
names, locations, counts and statistics. The client accepts results (`engine.cluster.commit`),
checkpoints, publishes `MetricsSample`s built from task completions and the workers' memory
as the scheduler reports it, and alone ends the run: `stats.json`, the final manifest, the
registry. No rows travel through the scheduler.

Faults: a task that raises is retried by Dask (`retries`), one whose worker died is
rescheduled by the scheduler; both write new part files under new names, and only the
accepted attempt is listed. Ctrl-C, SIGTERM or a cancel request on the metrics socket
cancels the futures, tells running tasks to stop (the token file), removes temporaries and
unlisted files, and ends the run ``cancelled``, resumable. A killed client leaves the run
``running`` with a dead supervisor: `amdsim list` shows it ``interrupted`` and
`amdsim resume RUN --cluster ...` submits only the shards its checkpoint lacks.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine.cluster.commit import ClusterCommit
from engine.cluster.metrics import ClusterSampler, scheduler_address, scheduler_info
from engine.cluster.sizing import TaskPlan, plan_tasks, worker_limits
from engine.cluster.task import BlockResult, BlockTask, read_token, simulate_block
from engine.errors import AmdsimError, ClusterError, DiskSpaceError
from engine.manifest import Manifest, read_manifest, write_manifest
from engine.memory.estimate import DISK_MARGIN, estimate_run
from engine.model.any_protocol import AnyProtocol
from engine.model.parameters import RunParameters, validate_parameters
from engine.pipeline.assignment import ShardProgress
from engine.pipeline.options import PipelineOptions, resolve_options
from engine.pipeline.parts import part_file_metadata
from engine.pipeline.records import record_abnormal_end, record_in_registry, running_manifest
from engine.pipeline.sampling import SampleRecorder
from engine.pipeline.signals import cancel_on_signals
from engine.pipeline.takeover import Mode, checkpoint_every, claim_directory, take_over
from engine.run_dir import RunLock, RunPaths, write_atomically
from ipc.messages import MetricsSample
from ipc.metrics import MetricsPublisher, metrics_socket_path

__all__ = ["ClusterFaults", "ClusterRun"]

log = logging.getLogger(__name__)
POLL_S = 0.05
WORKER_INFO_INTERVAL_S = 1.0
STOP_GRACE_S = 3.0  # after a cancel: how long running tasks get to remove their files
_DECODER = msgspec.msgpack.Decoder(BlockResult)


class ClusterFaults(msgspec.Struct, frozen=True, kw_only=True):
    """Fault injection for tests: a task kills its own worker once (see `BlockTask`)."""

    kill_marker: str | None = None
    kill_when: str = "simulate"


class ClusterRun:
    """One run on a Dask cluster through `client`. Call `start()`, then `run()`."""

    def __init__(
        self,
        client: Any,
        protocol: AnyProtocol,
        params: RunParameters,
        run_dir: Path,
        options: PipelineOptions | None = None,
        mode: Mode = "new",
        faults: ClusterFaults | None = None,
    ) -> None:
        if mode == "new":
            validate_parameters(params)
        self.client = client
        self.protocol = protocol
        self.params = params
        self.options = resolve_options(options or PipelineOptions(), params)
        self.mode = mode
        self.faults = faults or ClusterFaults()
        self.paths = RunPaths(Path(run_dir).resolve())  # workers elsewhere need the full path
        self.run_id = self.paths.root.name
        self.progress = ShardProgress()
        self._samples = ClusterSampler(client, SampleRecorder(self.run_id, params))
        self.discarded: list[str] = []
        self.cancelled_by: signal.Signals | None = None
        self.plan: TaskPlan | None = None
        self._cancel_reason: str | None = None
        self._lock: RunLock | None = None
        self._restore_signals: Callable[[], None] = lambda: None
        self._futures: dict[Any, list[int]] = {}
        self._token = secrets.token_hex(16)
        self._publisher: MetricsPublisher | None = None
        self._metrics_path: Path | None = None  # chosen once: a long path gets a temporary one
        self._commit: ClusterCommit | None = None

    # -- what the CLI and the dashboard read ----------------------------------------------

    @property
    def metrics_address(self) -> str:
        """Where subscribers connect for this run's `MetricsSample`s."""
        return str(self._metrics_path or "")

    @property
    def resumed_patients(self) -> int:
        """Patients already on disk when this (resumed) run started."""
        return self._samples.recorder.resumed_patients

    @property
    def resumed_visits(self) -> int:
        """Visits already on disk when this (resumed) run started."""
        return self._samples.recorder.resumed_visits

    @property
    def latest_sample(self) -> MetricsSample | None:
        """The last metrics sample published, None before the first."""
        return self._samples.recorder.latest

    @property
    def task_seconds(self) -> dict[str, float]:
        """Seconds tasks spent simulating and writing, summed over accepted tasks."""
        return dict(self._commit.seconds) if self._commit is not None else {}

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop (thread- and signal-safe); it ends ``cancelled``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        """Check the run fits, claim its directory, submit its tasks."""
        estimate = estimate_run(self.protocol, self.params, self.options)
        if self.mode != "resume":
            self._check_disk(estimate.disk_bytes)
        claim_directory(self.paths, self.mode)
        self._lock = RunLock(self.paths)
        self._restore_signals = cancel_on_signals(self._cancel_by_signal)
        try:
            self._start(estimate.visits_per_patient)
        except BaseException as exc:
            self._stop_tasks(wait=True)
            self._record_failure(_describe(exc))
            with contextlib.suppress(Exception):
                record_in_registry(self.paths, read_manifest(self.paths.manifest), quiet=True)
            self._restore_signals()
            self._close_publisher()
            self._lock.release()
            raise

    def _check_disk(self, disk_bytes: int) -> None:
        free = self.options.free_disk_bytes
        if free is None:
            parent = self.paths.root
            while not parent.exists():
                parent = parent.parent
            free = shutil.disk_usage(parent).free
        needed = int(disk_bytes * DISK_MARGIN)
        if needed > free:
            raise DiskSpaceError(
                f"this run needs about {needed >> 20:,} MiB on disk but only {free >> 20:,} "
                f"MiB are free under {self.paths.root}; free space or choose another --runs-dir"
            )

    def _start(self, visits_per_patient: float) -> None:
        self._metrics_path = metrics_socket_path(self.paths.root)
        taken = take_over(self.paths, self.mode, self.options)
        self.discarded = taken.discarded
        if taken.checkpoint is not None:
            self.progress.restore(taken.checkpoint)
            if self.progress.parts:
                raise ClusterError(
                    f"run {self.run_id} holds shards written in part by a local run "
                    f"({len(self.progress.parts)}); resume it without --cluster"
                )
            self._samples.recorder.resumed_patients = self.progress.patients
            self._samples.recorder.resumed_visits = self.progress.visits
        manifest = running_manifest(
            self.paths,
            self.protocol,
            self.params,
            taken.options,
            self.metrics_address,
            checkpoint_every(taken.options, taken.previous, self.mode),
            taken.previous if self.mode == "resume" else None,
            restarted=taken.previous if self.mode == "restart" else None,
        )
        info = scheduler_info(self.client)
        threads, limit = worker_limits(info)
        if threads == 0:
            raise ClusterError("the Dask cluster has no workers; start some with `dask worker`")
        manifest = msgspec.structs.replace(
            manifest,
            workers=len(info.get("workers", {})),
            cluster=scheduler_address(self.client),
            cluster_dashboard=str(getattr(self.client, "dashboard_link", "") or ""),
        )
        write_manifest(self.paths.manifest, manifest)
        record_in_registry(self.paths, manifest, register=self.mode != "resume")
        self.manifest = manifest
        self._publisher = MetricsPublisher(
            self._metrics_path,
            on_request=lambda _: self.cancel("cancel requested"),
        )
        self._commit = ClusterCommit(self.paths, manifest, self.progress, taken.checkpoint)
        write_atomically(self.paths.cluster_token, self._token.encode())
        self._check_workers_see_run()
        missing = [s for s in range(self.params.shard_count) if s not in self.progress.complete]
        self.plan = plan_tasks(self.params, missing, threads, limit, visits_per_patient)
        task = BlockTask(
            run_dir=str(self.paths.root),
            token=self._token,
            protocol=self.protocol,
            parameters=self.params,
            compression=taken.options.compression,
            slot_bytes=taken.options.slot_bytes,
            roll_bytes=taken.options.roll_bytes,
            row_group_patients=taken.options.row_group_patients,
            metadata=part_file_metadata(manifest),
            batch_shards=self.plan.batch_shards,
            kill_marker=self.faults.kill_marker,
            kill_when=self.faults.kill_when,
            profile=self.options.profile,
        )
        encoded = msgspec.msgpack.encode(task)
        retries = max(0, self.options.max_attempts - 1)
        for block in self.plan.blocks:
            future = self.client.submit(
                simulate_block,
                encoded,
                block,
                key=f"amdsim-{self.run_id}-{self._token[:8]}-shards-{block[0]}-{block[-1]}",
                pure=False,
                retries=retries,
            )
            self._futures[future] = block

    def _check_workers_see_run(self) -> None:
        """Every worker must see the run directory (shared storage, the same path)."""
        seen = self.client.run(read_token, self.paths.root)
        blind = sorted(address for address, token in seen.items() if token != self._token)
        if blind:
            raise ClusterError(
                f"{len(blind)} Dask worker(s) ({', '.join(blind[:3])}) cannot see the run "
                f"directory {self.paths.root}: it must be on storage every worker mounts at "
                "the same path (see docs/cluster.md)"
            )

    # -- run ------------------------------------------------------------------------------

    def run(self) -> Manifest:
        """Drive the run to its end and return the final manifest.

        Raises `ClusterError` after marking the run failed when a task failed on every attempt.
        """
        status, error = "completed", ""
        try:
            status, error = self._loop()
            self._stop_tasks(wait=status != "completed")
            assert self._commit is not None
            self._commit.remove_unlisted()
            final = self._commit.finish(status, error)
        except BaseException as exc:
            self._stop_tasks(wait=True)
            final = self._record_failure(_describe(exc))
            raise
        finally:
            self._restore_signals()
            with contextlib.suppress(Exception):
                self._publish_sample(status)
            self._close_publisher()
            with contextlib.suppress(Exception):
                record_in_registry(self.paths, read_manifest(self.paths.manifest))
            if self._lock is not None:
                self._lock.release()
        if status == "failed":
            raise ClusterError(error)
        return final

    def _loop(self) -> tuple[str, str]:
        from distributed import as_completed  # noqa: PLC0415 - only cluster runs get here

        finished = as_completed(list(self._futures))
        remaining = len(self._futures)
        next_sample = 0.0
        while remaining:
            if self._cancel_reason is not None:
                return "cancelled", self._cancel_reason
            if time.monotonic() >= next_sample:
                self._publish_sample("running")
                next_sample = time.monotonic() + self.options.metrics_interval_s
            if not finished.has_ready():
                time.sleep(POLL_S)
                continue
            for future in finished.next_batch(block=False):
                remaining -= 1
                failure = self._collect(future)
                if failure:
                    return "failed", failure
        return "completed", ""

    def _collect(self, future: Any) -> str:
        """Accept a finished task's files; the run's error if the task failed for good."""
        block = self._futures.pop(future)
        if future.status != "finished":
            exception = future.exception()
            shards = f"shards {block[0]}-{block[-1]}"
            return f"{shards} failed on the cluster: {type(exception).__name__}: {exception}"
        assert self._commit is not None
        self._commit.accept(_DECODER.decode(future.result()))
        future.release()
        return ""

    # -- ending ---------------------------------------------------------------------------

    def _stop_tasks(self, wait: bool) -> None:
        """Cancel what is left, tell running tasks to stop, give them a moment to clean up."""
        with contextlib.suppress(OSError):  # no token: every task of this client stops
            self.paths.cluster_token.unlink()
        if self._futures:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self._futures), force=True)
            self._futures.clear()
        deadline = time.monotonic() + (STOP_GRACE_S if wait else 0.0)
        while wait and self.paths.temporary_files() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _record_failure(self, error: str) -> Manifest | None:
        """The run could not end normally: record it failed, without temporaries."""
        manifest = getattr(self, "manifest", None)
        if manifest is None:
            return None
        with contextlib.suppress(OSError):
            record_abnormal_end(self.paths, manifest, "failed", error)
        return None

    def _cancel_by_signal(self, sig: signal.Signals) -> None:
        if self.cancelled_by is None:
            self.cancelled_by = sig
        self.cancel(f"interrupted by {sig.name}")

    def _publish_sample(self, status: str) -> None:
        if self._publisher is not None:
            batch = self.plan.batch_shards if self.plan else 0
            self._publisher.publish(self._samples.sample(status, self.progress, batch))

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None


def _describe(exc: BaseException) -> str:
    """A run's error for its manifest: our own errors as they read, others with their type."""
    return str(exc) if isinstance(exc, AmdsimError) else f"{type(exc).__name__}: {exc}"
