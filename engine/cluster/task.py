"""The Dask task: simulate a block of shards and write them as part files of the run.

Runs on a Dask worker, with the run directory on a file system that every worker and the
client see. Each shard is simulated by the same kernel, cut into the same parts (the run's
slot size) and written with the same Parquet settings as the local writer, into part files
whose numbers are random (unique per attempt: two attempts at one block never share a
file). Files are written under temporary names and renamed when closed (fsync before and
after, `engine.pipeline.parts`). The task returns only small things: the part files, where
each shard part is, and the statistics of exactly those parts. Nothing here commits: the
client lists accepted parts in its checkpoint, and a part no checkpoint lists is never read.

A task stops early, removing what it had open, when the run's token file no longer holds the
token it was given (the client cancelled, finished, or a newer client took the run over), so
an attempt the client gave up on does not go on writing into the run.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

import msgspec

from engine.manifest import ROW_GROUP_PATIENTS, Compression, PartFile, ShardLocation
from engine.model.any_protocol import StoredProtocol, dec_hook
from engine.model.interface import CompiledModel, compile_model
from engine.model.parameters import RunParameters
from engine.profiling import ProcessProfile, ProfileTarget
from engine.run_dir import RunPaths
from engine.stats.shard_stats import Counts, CountsState, ShardStats, SketchesState

__all__ = ["BlockResult", "BlockTask", "read_token", "simulate_block"]

_PART_NUMBER_BITS = 40  # random part numbers: a clash between two attempts is ~1e-12


class BlockTask(msgspec.Struct, frozen=True, kw_only=True):
    """What every task of a run needs (encoded once by the client, the same for all)."""

    run_dir: str
    token: str
    protocol: StoredProtocol
    parameters: RunParameters
    compression: Compression
    slot_bytes: int
    roll_bytes: int
    row_group_patients: int = ROW_GROUP_PATIENTS
    metadata: dict[str, str]
    batch_shards: int  # shards simulated at once (memory), never changes the rows
    # Fault injection, for tests only: the first task to see this file absent creates it and
    # then kills its own process: "simulate" mid-task, or "renamed" right after its first
    # part file was renamed into place.
    kill_marker: str | None = None
    kill_when: str = "simulate"
    # With --profile: each task profiles its own work into task-<first shard>-<attempt> here.
    profile: ProfileTarget | None = None


class SketchPart(msgspec.Struct, frozen=True, array_like=True):
    """One shard part's sketches, for the client's shard-order tree."""

    shard: int
    part: int
    part_count: int
    sketches: SketchesState


class WrittenFile(msgspec.Struct, frozen=True, kw_only=True):
    """A closed pair of part files and the statistics of exactly its rows."""

    part: PartFile
    locations: list[ShardLocation]
    counts: CountsState
    sketches: list[SketchPart]


class BlockResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a task returns: its files, nothing of their rows."""

    shards: list[int]
    files: list[WrittenFile]
    patients: int
    visits: int
    uncompressed_bytes: int
    simulate_s: float
    write_s: float
    host: str
    pid: int


class _Abandoned(Exception):
    """The run's token changed: the client no longer wants this attempt."""


_MODELS: dict[bytes, tuple[BlockTask, CompiledModel]] = {}
_MODELS_LOCK = threading.Lock()  # a worker with several threads may run two runs at once
_RESULT_ENCODER = msgspec.msgpack.Encoder()


def read_token(run_dir: Path) -> str:
    """The token of the client that owns the run now ("" if none)."""
    try:
        return RunPaths(Path(run_dir)).cluster_token.read_text().strip()
    except OSError:
        return ""


def simulate_block(task_bytes: bytes, shards: list[int]) -> bytes:
    """Simulate `shards` of the run `task_bytes` describes, write them; a `BlockResult`.

    Returned msgpack-encoded (a few kB per shard: locations and statistics). With a profile
    directory, the task's thread is profiled into ``task-<first shard>-<attempt>``, the
    attempt being the first number not yet taken there.
    """
    target = msgspec.msgpack.decode(task_bytes, type=_ProfileOnly).profile
    stems = (f"task-{shards[0]}-{attempt}" for attempt in itertools.count())
    with ProcessProfile(target, stems):
        return _simulate_block(task_bytes, shards)


class _ProfileOnly(msgspec.Struct):
    """The one field of a `BlockTask` read before the profile starts (decoding the rest,
    and compiling the model, is part of what is profiled)."""

    profile: ProfileTarget | None = None


def _simulate_block(task_bytes: bytes, shards: list[int]) -> bytes:
    task, model = _compiled(task_bytes)
    paths = RunPaths(Path(task.run_dir))
    writer = _BlockWriter(task, paths)
    started = time.perf_counter()
    simulate_s = 0.0
    try:
        for first in range(0, len(shards), task.batch_shards):
            _check_token(task)
            batch = shards[first : first + task.batch_shards]
            began = time.perf_counter()
            outputs = model.simulate_shards(task.parameters, batch)
            simulate_s += time.perf_counter() - began
            if task.kill_when == "simulate":
                _maybe_kill(task)
            for output in outputs:
                writer.write(output)
                _check_token(task)
            del outputs
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return _RESULT_ENCODER.encode(
        BlockResult(
            shards=list(shards),
            files=writer.files,
            patients=writer.patients,
            visits=writer.visits,
            uncompressed_bytes=writer.uncompressed_bytes,
            simulate_s=simulate_s,
            write_s=time.perf_counter() - started - simulate_s,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )


class _BlockWriter:
    """A task's rolling pair of part files and the statistics of what each holds."""

    def __init__(self, task: BlockTask, paths: RunPaths) -> None:
        from engine.pipeline.parts import PartFiles  # noqa: PLC0415 - loads pyarrow

        self.task = task
        self.parts = PartFiles(
            paths,
            task.compression,
            task.roll_bytes,
            task.metadata,
            first_number=secrets.randbits(_PART_NUMBER_BITS),
            row_group_patients=task.row_group_patients,
        )
        self.files: list[WrittenFile] = []
        self._counts = Counts()
        self._locations: list[ShardLocation] = []
        self._sketches: list[SketchPart] = []
        self.patients = self.visits = self.uncompressed_bytes = 0

    def write(self, output: object) -> None:
        from engine.pipeline.batches import decode_batch, encode_shard  # noqa: PLC0415

        params = self.task.parameters
        for batch in encode_shard(output, 0, params.horizon_days, self.task.slot_bytes):  # type: ignore[arg-type]
            decoded = decode_batch(batch)
            location = self.parts.write(decoded)
            stats = ShardStats.from_state(decoded.stats)
            self._counts.add(stats.counts)
            self._locations.append(location)
            self._sketches.append(
                SketchPart(batch.shard, batch.part, batch.part_count, stats.sketches.state())
            )
            self.patients += batch.patients.length
            self.visits += batch.visits.length
            self.uncompressed_bytes += decoded.patients.nbytes + decoded.visits.nbytes
            if self.parts.should_roll():
                self._roll()

    def close(self) -> None:
        self._roll()

    def abort(self) -> None:
        self.parts.abort()

    def _roll(self) -> None:
        from engine.pipeline.parts import encode_file_stats  # noqa: PLC0415

        _check_token(self.task)  # never rename a file into a run that gave this attempt up
        part = self.parts.roll({"patients": {"amdsim.stats": encode_file_stats(self._counts)}})
        if part is None:
            return
        self.files.append(
            WrittenFile(
                part=part,
                locations=self._locations,
                counts=self._counts.state(),
                sketches=self._sketches,
            )
        )
        self._counts = Counts()
        self._locations, self._sketches = [], []
        if self.task.kill_when == "renamed":
            _maybe_kill(self.task)


def _compiled(task_bytes: bytes) -> tuple[BlockTask, CompiledModel]:
    """The task and its compiled model, compiled once per worker process and run."""
    key = hashlib.sha256(task_bytes).digest()
    with _MODELS_LOCK:
        found = _MODELS.get(key)
        if found is None:
            task = msgspec.msgpack.decode(task_bytes, type=BlockTask, dec_hook=dec_hook)
            while len(_MODELS) >= 2:  # keep memory flat: a run or two per worker at a time
                _MODELS.pop(next(iter(_MODELS)))
            found = _MODELS[key] = (task, compile_model(task.protocol))
    return found


def _check_token(task: BlockTask) -> None:
    if read_token(Path(task.run_dir)) == task.token:
        return
    if not Path(task.run_dir).is_dir():  # a worker that joined without the shared mount
        raise FileNotFoundError(
            f"Dask worker on {socket.gethostname()} cannot see the run directory "
            f"{task.run_dir}: it must be on storage every worker mounts at the same path"
        )
    raise _Abandoned(f"run {Path(task.run_dir).name} no longer wants this task")


def _maybe_kill(task: BlockTask) -> None:
    """Fault injection: the first task to get here kills its own worker process."""
    if task.kill_marker is None:
        return
    try:
        descriptor = os.open(task.kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(descriptor)
    os.kill(os.getpid(), signal.SIGKILL)
