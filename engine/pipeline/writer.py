"""The writer process: channel batches in, Parquet part files, index and manifest out.

It is the only process that writes a run's data files. It keeps the first copy of each
shard part (a retried shard may arrive twice), merges the exact totals workers computed,
and tells the supervisor what is on disk. On any failure it deletes the part files it had
open, reports `WriterFailed` and exits non-zero, so a failed run never shows a part file
that looks finished but is not.

Start-up: the process listens on the channel before importing the Parquet machinery (about
0.3 s), so workers connect while it loads. For the same reason this module imports only the
channel at the top, and its configuration carries the manifest as JSON rather than a struct
(unpickling a struct would import its module first).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from engine.pipeline.processes import prepare_child
from ipc.channel import ChannelReceiver, ChannelSpec, EndOfChannel
from ipc.messages import (
    ChannelMessage,
    FinishRun,
    PatientBatch,
    SenderClosed,
    ShardWritten,
    WriterFailed,
    WriterFinished,
    WriterReady,
)

__all__ = ["WriterConfig", "writer_main"]

_ENCODER = msgspec.msgpack.Encoder()


class WriterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the writer needs; `manifest_json` is the manifest as the supervisor wrote it."""

    channel: ChannelSpec
    run_dir: str
    manifest_json: bytes
    compression: str
    roll_bytes: int
    fail_after_bytes: int | None = None  # fault injection: disk full after this many bytes


def writer_main(config: WriterConfig, conn: Connection) -> None:
    """Entry point of the writer process."""
    prepare_child("writer")
    receiver = ChannelReceiver(
        config.channel,
        msgspec.msgpack.Decoder(ChannelMessage),
        on_sender_closed=lambda sender: _send(conn, SenderClosed(sender=sender)),
    )
    writer = None
    try:
        writer = _Writer(config, conn)  # loads pyarrow.parquet while the workers start
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
    def __init__(self, config: WriterConfig, conn: Connection) -> None:
        # Imported here, after the channel listens: see the module docstring.
        from engine.manifest import Manifest  # noqa: PLC0415
        from engine.pipeline.parts import PartFiles  # noqa: PLC0415
        from engine.run_dir import RunPaths  # noqa: PLC0415
        from engine.totals import RunTotals  # noqa: PLC0415

        self.config = config
        self.conn = conn
        self.paths = RunPaths(Path(config.run_dir))
        self.manifest = msgspec.json.decode(config.manifest_json, type=Manifest)
        self.parts = PartFiles(
            self.paths,
            config.compression,  # type: ignore[arg-type]
            config.roll_bytes,
            metadata={
                "amdsim.format_version": str(self.manifest.format_version),
                "amdsim.run_id": self.manifest.run_id,
                "amdsim.protocol": msgspec.json.encode(self.manifest.protocol).decode(),
                "amdsim.parameters": msgspec.json.encode(self.manifest.parameters).decode(),
            },
            fail_after_bytes=config.fail_after_bytes,
        )
        self.written: set[tuple[int, int]] = set()
        self.open_locations: list = []
        self.closed_locations: list = []
        self.closed_parts: list = []
        self.totals = RunTotals()
        self.uncompressed_bytes = 0
        self.finish: FinishRun | None = None
        self.timings = {"wait": 0.0, "decode": 0.0, "write": 0.0, "roll": 0.0}

    def run(self, receiver: ChannelReceiver) -> None:
        try:
            _send(self.conn, WriterReady(pid=os.getpid()))
            while True:
                started = time.perf_counter()
                try:
                    received = receiver.receive()
                except EndOfChannel:
                    break
                finally:
                    self.timings["wait"] += time.perf_counter() - started
                with received as message:
                    if isinstance(message, PatientBatch):
                        self._write(message)
                    else:
                        self.finish = message
        finally:
            receiver.close()
        self._close()

    def _write(self, batch: PatientBatch) -> None:
        from engine.pipeline.batches import decode_batch  # noqa: PLC0415 - already loaded

        key = (batch.shard, batch.part)
        if key in self.written:
            return
        started = time.perf_counter()
        decoded = decode_batch(batch)
        decoded_at = time.perf_counter()
        location = self.parts.write(decoded)
        self.timings["decode"] += decoded_at - started
        self.timings["write"] += time.perf_counter() - decoded_at
        self.written.add(key)
        self.open_locations.append(location)
        self.totals = self.totals.merge(decoded.totals)
        self.uncompressed_bytes += decoded.patients.nbytes + decoded.visits.nbytes
        del decoded
        if self.parts.should_roll():
            started = time.perf_counter()
            self._roll()
            self.timings["roll"] += time.perf_counter() - started
        _send(
            self.conn,
            ShardWritten(
                shard=batch.shard,
                part=batch.part,
                part_count=batch.part_count,
                patients=batch.patients.length,
                visits=batch.visits.length,
                bytes_written=self.parts.bytes_written,
            ),
        )

    def _roll(self) -> None:
        from engine.manifest import ShardIndex, write_index  # noqa: PLC0415 - already loaded

        part = self.parts.roll()
        if part is None:
            return
        self.closed_parts.append(part)
        self.closed_locations.extend(self.open_locations)
        self.open_locations = []
        write_index(
            self.paths.index,
            ShardIndex(
                run_id=self.manifest.run_id,
                parts=self.closed_parts,
                shards=self.closed_locations,
                totals=self.totals,
                uncompressed_bytes=self.uncompressed_bytes,
            ),
        )

    def _close(self) -> None:
        from engine.manifest import ShardIndex, write_index, write_manifest  # noqa: PLC0415

        self._roll()
        if not self.closed_parts:
            write_index(self.paths.index, ShardIndex(run_id=self.manifest.run_id))
        finish = self.finish or FinishRun(
            status="failed", error="the supervisor stopped without finishing the run"
        )
        on_disk = self.paths.bytes_on_disk()
        manifest = msgspec.structs.replace(
            self.manifest,
            status=finish.status,
            error=finish.error,
            finished=datetime.datetime.now(datetime.UTC),
            totals=self.totals,
            bytes_on_disk=on_disk,
            uncompressed_bytes=self.uncompressed_bytes,
            compression_ratio=self.uncompressed_bytes / on_disk if on_disk else 0.0,
        )
        write_manifest(self.paths.manifest, manifest)
        _send(
            self.conn,
            WriterFinished(status=finish.status, bytes_on_disk=on_disk, timings=self.timings),
        )

    def abort(self) -> None:
        self.parts.abort()


def _send(conn: Connection, message: msgspec.Struct) -> None:
    with contextlib.suppress(OSError, EOFError):  # supervisor gone: the watchdog ends us
        conn.send_bytes(_ENCODER.encode(message))
