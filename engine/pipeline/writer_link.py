"""The writer process seen from the supervisor: starting it and reading its reports.

The writer reports each shard part it wrote (`ShardWritten`, counted into the run's
`ShardProgress`), then either `WriterFinished` (files closed, final manifest written) or
`WriterFailed` (its error and traceback). A writer that exits without either crashed; the
run then fails with `WriterFailedError`.

Does not cover: the writer's side (`engine.pipeline.writer`), stopping it
(`engine.pipeline.processes`).
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

import msgspec

from engine.errors import AmdsimError, WriterFailedError
from engine.manifest import Manifest
from engine.pipeline.assignment import ShardProgress
from engine.pipeline.options import PipelineOptions
from engine.pipeline.processes import CONTEXT, describe_exit, start_process
from engine.pipeline.writer import WriterConfig, writer_main
from engine.run_dir import RunPaths
from ipc.channel import ChannelSpec
from ipc.messages import (
    SenderClosed,
    ShardWritten,
    StageReport,
    StageTimes,
    WriterFailed,
    WriterFinished,
    WriterReady,
    WriterToSupervisor,
)

__all__ = ["WriterLink"]


class WriterLink:
    """The run's one writer process, its pipe, and how it ended (`finished` or `failed`).

    `fail(error type, message, traceback)` ends the run with an error; `on_stages` takes the
    stage timings the writer reports (while it runs and with `WriterFinished`).
    """

    def __init__(
        self,
        progress: ShardProgress,
        fail: Callable[[type[AmdsimError], str, str], None],
        on_stages: Callable[[list[StageTimes]], None] = lambda _: None,
    ) -> None:
        self.process: SpawnProcess | None = None
        self.conn: Connection | None = None
        self.finished = False
        self.failed = False
        self._progress = progress
        self._fail = fail
        self._on_stages = on_stages
        self._decoder = msgspec.msgpack.Decoder(WriterToSupervisor)

    def start(
        self,
        channel: ChannelSpec,
        paths: RunPaths,
        manifest: Manifest,
        options: PipelineOptions,
        resume: bool,
    ) -> None:
        """Start the writer process for the run `manifest` describes."""
        config = WriterConfig(
            channel=channel,
            run_dir=str(paths.root),
            manifest_json=msgspec.json.encode(manifest),
            compression=options.compression,
            roll_bytes=options.roll_bytes,
            lanes=options.writer_lanes,
            checkpoint_every=manifest.checkpoint_every,
            row_group_patients=options.row_group_patients,
            resume=resume,
            fail_after_bytes=options.writer_fail_after_bytes,
            delay_per_batch_s=options.writer_delay_per_batch_s,
            live_stats_interval_s=options.live_stats_interval_s,
            profile=options.profile,
        )
        ours, theirs = CONTEXT.Pipe()
        self.process = CONTEXT.Process(
            target=writer_main, args=(config, theirs), name="amdsim-writer", daemon=True
        )
        start_process(self.process)
        theirs.close()
        self.conn = ours

    def drain(self) -> None:
        """Handle every report the writer has sent."""
        assert self.conn is not None
        while self.conn.poll(0):
            try:
                message = self._decoder.decode(self.conn.recv_bytes())
            except (EOFError, OSError):
                return
            if isinstance(message, ShardWritten):
                self._progress.record(message)
            elif isinstance(message, StageReport):
                self._on_stages(message.times)
            elif isinstance(message, WriterFinished):
                self.finished = True
                self._on_stages(message.times)
            elif isinstance(message, WriterFailed):
                self.failed = True
                self._fail(
                    WriterFailedError, f"the writer failed: {message.error}", message.traceback
                )
            elif isinstance(message, WriterReady | SenderClosed):
                pass

    def exited(self) -> None:
        """The process ended: read what it said last; without a final word, it crashed."""
        self.drain()
        if not self.finished and not self.failed:
            self.failed = True
            assert self.process is not None
            how = describe_exit(self.process)
            self._fail(WriterFailedError, f"the writer process {how} without finishing", "")
