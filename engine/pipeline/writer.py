"""The writer process: channel batches in, Parquet part files, index and manifest out.

It is the only process that writes a run's data files. Its main thread receives batches,
keeps the first copy of each shard part (a retried shard may arrive twice) and hands each
batch to one of several *lanes* (`engine.pipeline.writer_lane`): threads with their own
rolling part files. Parquet encoding
releases the GIL, so lanes encode in parallel and the writer keeps up with more workers on
machines with more cores. Each lane releases its batch's channel slot once written, adds the
statistics workers computed to the run's (engine.stats) and tells the supervisor what is on
disk. Every closed part file carries the counts of its own rows in its Parquet metadata;
`checkpoint.json` records closed files, shard locations and the statistics of exactly those
shards; `stats.json` holds the run's statistics at the end.

The receiving thread and each lane time their stages (`engine.pipeline.stage_clock`) and
the receiving thread reports all of them to the supervisor at most every `REPORT_EVERY_S`.

On any failure the writer deletes the part files it had open, reports `WriterFailed` and
exits non-zero, so a failed run never shows a part file that looks finished but is not.

Start-up: the process listens on the channel before importing the Parquet machinery (about
0.3 s), so workers connect while it loads. For the same reason this module imports only the
channel at the top, and its configuration carries the manifest as JSON rather than a struct
(unpickling a struct would import its module first).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from engine.pipeline.processes import prepare_child, seconds_since_start
from engine.pipeline.stage_clock import StageClock
from engine.pipeline.writer_lane import ROLL, WriterLane
from engine.profiling import ProcessProfile, ProfileTarget
from ipc.channel import ChannelReceiver, ChannelSpec, EndOfChannel
from ipc.messages import (
    ChannelMessage,
    FinishRun,
    PatientBatch,
    SenderClosed,
    ShardWritten,
    StageReport,
    StageTimes,
    WriterFailed,
    WriterFinished,
    WriterReady,
)

__all__ = ["WriterConfig", "writer_main"]

_ENCODER = msgspec.msgpack.Encoder()
_FAILURE_CHECK_S = 0.25  # how often the receiving thread looks for a failed lane
REPORT_EVERY_S = 0.5  # stage timings go to the supervisor at most this often
RECEIVER_STAGES = ("start-up", "waiting for batches", "decode", "live statistics", "finishing")


class WriterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the writer needs; `manifest_json` is the manifest as the supervisor wrote it."""

    channel: ChannelSpec
    run_dir: str
    manifest_json: bytes
    compression: str
    roll_bytes: int
    lanes: int = 1
    checkpoint_every: int = 0  # patients; 0: checkpoint only when part files roll by size
    row_group_patients: int = 1024  # see engine.manifest.ROW_GROUP_PATIENTS
    resume: bool = False  # carry on from checkpoint.json (its files and statistics)
    live_stats_interval_s: float = 1.0  # how often live-stats.msgpack is rewritten
    fail_after_bytes: int | None = None  # fault injection: disk full after this many bytes
    delay_per_batch_s: float = 0.0  # fault injection: a slow disk, this much longer per batch
    profile: ProfileTarget | None = None  # where the writer writes its profile, lanes too


def writer_main(config: WriterConfig, conn: Connection) -> None:
    """Entry point of the writer process; profiled whole, with its lanes, if asked."""
    prepare_child("writer")
    clock = StageClock("writer", "writer", RECEIVER_STAGES)
    clock.backdate("start-up", seconds_since_start())  # the interpreter and imports
    with ProcessProfile.of_process(config.profile, "writer") as profile:
        _write_run(config, conn, profile, clock)


def _write_run(
    config: WriterConfig, conn: Connection, profile: ProcessProfile, clock: StageClock
) -> None:
    receiver = ChannelReceiver(
        config.channel,
        msgspec.msgpack.Decoder(ChannelMessage),
        on_sender_closed=lambda sender: _send(conn, SenderClosed(sender=sender)),
    )
    writer = None
    try:
        with clock.stage("start-up"):
            writer = _Writer(config, conn, clock, profile)  # loads pyarrow while workers start
        writer.run(receiver)
    except BaseException as exc:
        receiver.close()
        if writer is not None:
            writer.abort()
        _send(
            conn,
            WriterFailed(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()),
        )
        conn.close()
        sys.exit(1)
    conn.close()


class _Writer:
    def __init__(
        self, config: WriterConfig, conn: Connection, clock: StageClock, profile: ProcessProfile
    ) -> None:
        # Imported here, after the channel listens: see the module docstring.
        from engine.manifest import decode_manifest  # noqa: PLC0415
        from engine.pipeline.parts import (  # noqa: PLC0415
            DiskBudget,
            PartFiles,
            encode_file_stats,
            part_file_metadata,
        )
        from engine.run_dir import RunPaths  # noqa: PLC0415
        from engine.stats.run_stats import StatsAccumulator  # noqa: PLC0415
        from engine.stats.shard_stats import Counts, ShardStats  # noqa: PLC0415

        self.new_counts = Counts
        self.shard_stats_from_state = ShardStats.from_state

        self.config = config
        self.conn = conn
        self.clock = clock  # the receiving thread's; each lane has its own
        self.next_report = 0.0
        self.profile = profile
        self.paths = RunPaths(Path(config.run_dir))
        self.manifest = decode_manifest(config.manifest_json)
        metadata = part_file_metadata(self.manifest)
        self.encode_file_stats = encode_file_stats
        disk = None if config.fail_after_bytes is None else DiskBudget(config.fail_after_bytes)
        params = self.manifest.parameters
        checkpoint = self._resumed_checkpoint() if config.resume else None
        first_number = (
            1 + max((p.number for p in checkpoint.parts), default=-1) if checkpoint else 0
        )
        self.lanes = [
            WriterLane(
                self,
                number,
                PartFiles(
                    self.paths,
                    config.compression,  # type: ignore[arg-type]
                    config.roll_bytes,
                    metadata,
                    first_number=first_number + number,
                    number_step=config.lanes,
                    disk=disk,
                    row_group_patients=config.row_group_patients,
                ),
            )
            for number in range(config.lanes)
        ]
        self.lock = threading.Lock()  # guards everything below, shared with the lanes
        self.written: set[tuple[int, int]] = set()
        self.open_locations: dict[int, list] = {id(lane): [] for lane in self.lanes}
        self.closed_locations: list = []
        self.closed_parts: list = []
        self.stats = StatsAccumulator(params.shard_count, params.horizon_days)
        self.uncompressed_bytes = 0
        self.bytes_written = {id(lane): 0 for lane in self.lanes}
        self.resumed_bytes = 0
        self.part_counts: dict[int, int] = {}  # shards already (partly) on disk: their cut
        if checkpoint is not None:
            self.written = {(loc.shard, loc.part) for loc in checkpoint.shards}
            self.part_counts = {loc.shard: loc.part_count for loc in checkpoint.shards}
            self.closed_locations = list(checkpoint.shards)
            self.closed_parts = list(checkpoint.parts)
            if checkpoint.stats is not None:
                self.stats = StatsAccumulator.from_state(checkpoint.stats)
            self.uncompressed_bytes = checkpoint.uncompressed_bytes
            self.resumed_bytes = sum(p.patients_bytes + p.visits_bytes for p in checkpoint.parts)
        self.patients_since_checkpoint = 0
        self.next_live_statistics = 0.0
        self.finish: FinishRun | None = None

    def _resumed_checkpoint(self) -> Any:
        """The checkpoint a resumed run carries on from (empty if none was written)."""
        from engine.manifest import Checkpoint, read_checkpoint  # noqa: PLC0415

        if not self.paths.checkpoint.is_file():
            return Checkpoint(run_id=self.manifest.run_id)
        return read_checkpoint(self.paths.checkpoint)

    def run(self, receiver: ChannelReceiver) -> None:
        from engine.pipeline.batches import decode_batch  # noqa: PLC0415 - already loaded

        for lane in self.lanes:
            lane.start()
        try:
            _send(self.conn, WriterReady(pid=os.getpid()))
            clock = self.clock
            while True:
                try:
                    with clock.stage("waiting for batches"):
                        received = receiver.receive(timeout_s=_FAILURE_CHECK_S)
                except TimeoutError:
                    self._raise_lane_failure()
                    self._maybe_publish_live_statistics()
                    self._maybe_report_stages()
                    continue
                except EndOfChannel:
                    break
                self._raise_lane_failure()
                self._maybe_report_stages()
                message = received.message
                if not isinstance(message, PatientBatch):
                    self.finish = message
                    received.release()
                    continue
                key = (message.shard, message.part)
                if key in self.written:  # a retried shard's copy
                    received.release()
                    continue
                self._check_cut(message)
                self.written.add(key)
                with clock.stage("decode"):
                    decoded = decode_batch(message)
                lane = min(self.lanes, key=lambda candidate: candidate.queued)
                lane.dispatched += 1
                lane.jobs.put((received, decoded))
                self._maybe_checkpoint(message.patients.length)
                self._maybe_publish_live_statistics()
            with clock.stage("finishing"):
                for lane in self.lanes:
                    lane.jobs.put(None)
                for lane in self.lanes:
                    lane.join()
            self._raise_lane_failure()
        finally:
            receiver.close()
        with self.clock.stage("finishing"):
            manifest = self._close()
        _send(
            self.conn,
            WriterFinished(
                status=manifest.status, bytes_on_disk=manifest.bytes_on_disk, times=self.stages()
            ),
        )

    def stages(self) -> list[StageTimes]:
        """The stage timings so far: the receiving thread's, then each lane's."""
        return [self.clock.snapshot()] + [lane.clock.snapshot() for lane in self.lanes]

    def _maybe_report_stages(self) -> None:
        now = time.monotonic()
        if now >= self.next_report:
            self.next_report = now + REPORT_EVERY_S
            _send(self.conn, StageReport(times=self.stages()))

    def _check_cut(self, batch: PatientBatch) -> None:
        """A shard partly on disk before a resume must be cut into the same parts again."""
        expected = self.part_counts.get(batch.shard)
        if expected is not None and expected != batch.part_count:
            raise RuntimeError(
                f"shard {batch.shard} arrived in {batch.part_count} parts but {expected} are on "
                "disk; a resumed run must use the slot size the run started with"
            )

    def _maybe_checkpoint(self, patients: int) -> None:
        """Every `checkpoint_every` patients, have every lane close its files (a checkpoint)."""
        every = self.config.checkpoint_every
        if every <= 0:
            return
        self.patients_since_checkpoint += patients
        if self.patients_since_checkpoint >= every:
            self.patients_since_checkpoint = 0
            for lane in self.lanes:
                lane.jobs.put(ROLL)

    def _maybe_publish_live_statistics(self) -> None:
        """At most once a `live_stats_interval_s`: the counts of every row written so far
        (closed and open files), for dashboards to chart while the run goes.

        Counts only (no sketches): cheap to add up, and all the live charts need. Written
        without fsync: it is disposable, and replaced by stats.json at the end.
        """
        now = time.monotonic()
        if now < self.next_live_statistics:
            return
        self.next_live_statistics = now + self.config.live_stats_interval_s
        with self.clock.stage("live statistics"):
            self._publish_live_statistics()

    def _publish_live_statistics(self) -> None:
        from engine.stats.live import write_live_statistics  # noqa: PLC0415 - small

        with self.lock:
            counts = self.new_counts()
            counts.add(self.stats.counts)
            for lane in self.lanes:
                counts.add(lane.pending_counts)
            shards = len(self.written)
        if not counts.arrays:
            return  # no rows yet (waiting for the first batch): nothing to chart
        write_live_statistics(self.paths, counts, self.manifest.parameters.horizon_days, shards)

    def _raise_lane_failure(self) -> None:
        for lane in self.lanes:
            if lane.failure is not None:
                raise lane.failure

    def record(self, decoded: Any, location: Any, lane_bytes: int) -> None:
        """Called by a lane once a batch is on disk (in a file that may still be open)."""
        batch = decoded.batch
        lane = _current_lane()
        stats = self.shard_stats_from_state(decoded.stats)
        lane.pending_sketches.append((batch.shard, batch.part, batch.part_count, stats.sketches))
        with self.lock:
            lane.pending_counts.add(stats.counts)  # under the lock: live statistics read it
            self.open_locations[id(_current_lane())].append(location)
            self.uncompressed_bytes += decoded.patients.nbytes + decoded.visits.nbytes
            self.bytes_written[id(_current_lane())] = lane_bytes
            _send(
                self.conn,
                ShardWritten(
                    shard=batch.shard,
                    part=batch.part,
                    part_count=batch.part_count,
                    patients=batch.patients.length,
                    visits=batch.visits.length,
                    bytes_written=self.resumed_bytes + sum(self.bytes_written.values()),
                ),
            )

    def roll(self, lane: WriterLane) -> None:
        """Close a lane's part files; their shards and statistics join the checkpoint.

        The run's statistics count closed files only, so a checkpoint's statistics always
        match its files exactly and a resumed run adds every shard once.
        """
        part = lane.parts.roll(
            {"patients": {"amdsim.stats": self.encode_file_stats(lane.pending_counts)}}
        )
        if part is None:
            return
        with self.lock:
            with lane.clock.stage("statistics merge"):
                self.stats.add_counts(lane.pending_counts)
                for shard, index, part_count, sketches in lane.pending_sketches:
                    self.stats.add_sketches(shard, index, part_count, sketches)
            lane.pending_counts = self.new_counts()
            lane.pending_sketches = []
            self.closed_parts.append(part)
            self.closed_locations.extend(self.open_locations[id(lane)])
            self.open_locations[id(lane)] = []
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        from engine.manifest import Checkpoint, write_checkpoint  # noqa: PLC0415 - loaded

        write_checkpoint(
            self.paths.checkpoint,
            Checkpoint(
                format_version=self.manifest.format_version,  # the run's format
                run_id=self.manifest.run_id,
                parts=sorted(self.closed_parts, key=lambda p: p.number),
                shards=self.closed_locations,
                stats=self.stats.state(),
                uncompressed_bytes=self.uncompressed_bytes,
            ),
        )

    def _close(self) -> Any:
        """The last checkpoint, stats.json and the final manifest, which it returns."""
        from engine.manifest import write_run_end  # noqa: PLC0415 - already loaded

        self._write_checkpoint()
        statistics = self.stats.result()
        finish = self.finish or FinishRun(
            status="failed", error="the supervisor stopped without finishing the run"
        )
        return write_run_end(
            self.paths,
            self.manifest,
            statistics,
            finish.status,
            finish.error,
            self.uncompressed_bytes,
        )

    def abort(self) -> None:
        for lane in self.lanes:
            lane.jobs.put(None)
        for lane in self.lanes:
            lane.join(timeout=5.0)
            lane.parts.abort()


def _current_lane() -> threading.Thread:
    return threading.current_thread()


def _send(conn: Connection, message: msgspec.Struct) -> None:
    with contextlib.suppress(OSError, EOFError):  # supervisor gone: the watchdog ends us
        conn.send_bytes(_ENCODER.encode(message))
