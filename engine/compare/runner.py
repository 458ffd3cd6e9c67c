"""Run a comparison: blocks of shards in worker processes, a checkpoint per block, resumable.

A comparison directory holds ``spec.json`` (the arms' protocols as validated, the run
parameters and the fellow-eye settings: everything the numbers depend on), ``status.json``
and ``blocks/``: one small file per finished block (its summary, engine.compare.block),
written to a temporary name and renamed, so a crash, Ctrl-C or kill loses at most the blocks
in flight. Resume reads the spec back, skips the blocks on disk and simulates the rest.
Blocks have a fixed number of shards recorded in the spec, and totals merge in block order,
so the result is the same whatever the number of workers or interruptions.

Blocks run in spawned worker processes that ignore Ctrl-C (the parent cancels them) and
exit when the parent dies, or, given a `distributed.Client`, as tasks on its Dask cluster
(engine.compare.executors); on any exit the parent cancels what is left and, locally,
terminates and joins every worker it started.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.compare.block import (
    BlockSummary,
    CompareModel,
    compile_arms,
    simulate_compare_block,
)
from engine.compare.executors import open_blocks
from engine.compare.features import EyeSettings
from engine.compare.totals import CompareTotals, merge_blocks
from engine.errors import ParameterError
from engine.model.any_protocol import StoredProtocol, dec_hook
from engine.model.parameters import RunParameters
from engine.model.v2.schema import TimeBasedProtocol
from engine.run_dir import write_atomically

__all__ = [
    "SHARDS_PER_BLOCK",
    "ArmSpec",
    "CompareCancelled",
    "CompareSpec",
    "block_plan",
    "load_spec",
    "run_blocks",
]

SHARDS_PER_BLOCK = 4  # fixed per comparison (recorded in its spec): blocks never depend on W
SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
BLOCKS_DIR = "blocks"


class ArmSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One arm: its short name, the file it came from and its protocol as validated."""

    name: str
    source: str
    protocol: StoredProtocol


class CompareSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a comparison's numbers depend on."""

    format: int = 1
    arms: list[ArmSpec]
    params: RunParameters
    eye: EyeSettings
    shards_per_block: int = SHARDS_PER_BLOCK
    created: str = ""


class CompareCancelled(Exception):
    """The comparison was cancelled; its finished blocks are kept and it can be resumed."""


def block_plan(spec: CompareSpec) -> list[list[int]]:
    """The shards of each block, in order."""
    shards = list(range(spec.params.shard_count))
    size = spec.shards_per_block
    return [shards[i : i + size] for i in range(0, len(shards), size)]


def write_spec(directory: Path, spec: CompareSpec) -> None:
    """Create the comparison directory with its spec (refuses a non-empty directory)."""
    if directory.exists() and any(directory.iterdir()):
        raise ParameterError(
            f"{directory} is not empty; resume it with `amdsim compare --resume {directory}` "
            "or choose another --out"
        )
    (directory / BLOCKS_DIR).mkdir(parents=True, exist_ok=True)
    write_atomically(directory / SPEC_FILE, msgspec.json.format(msgspec.json.encode(spec)))
    write_status(directory, "running")


def load_spec(directory: Path) -> CompareSpec:
    """The spec of an existing comparison; `ParameterError` if there is none."""
    path = directory / SPEC_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParameterError(
            f"{directory} is not a comparison directory ({exc.strerror})"
        ) from None
    try:
        return msgspec.json.decode(data, type=CompareSpec, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise ParameterError(f"{path} is damaged or from another version: {exc}") from None


def write_status(directory: Path, status: str, **extra: object) -> None:
    """Record the comparison's status (running, completed, cancelled, failed)."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document = {"status": status, "updated": now, **extra}
    write_atomically(directory / STATUS_FILE, msgspec.json.encode(document))


def read_status(directory: Path) -> dict[str, object]:
    """The status document, or ``{"status": "unknown"}``."""
    try:
        return msgspec.json.decode((directory / STATUS_FILE).read_bytes())
    except (OSError, msgspec.DecodeError):
        return {"status": "unknown"}


def finished_blocks(directory: Path) -> dict[int, BlockSummary]:
    """Blocks already on disk, by number (temporary files are ignored and removed)."""
    found: dict[int, BlockSummary] = {}
    folder = directory / BLOCKS_DIR
    decoder = msgspec.msgpack.Decoder(BlockSummary)
    for path in sorted(folder.glob("*")):
        if not path.name.endswith(".msgpack"):
            path.unlink(missing_ok=True)  # a temporary left by a killed write
            continue
        summary = decoder.decode(path.read_bytes())
        found[summary.block] = summary
    return found


_CACHE: dict[bytes, tuple[CompareModel, CompareSpec]] = {}
_CACHE_SIZE = 2  # a PSA interleaves at most a couple of draws per worker
_CACHE_LOCK = threading.Lock()  # a Dask worker may run several blocks in threads


def run_block_task(spec_json: bytes, block: int, shards: list[int]) -> bytes:
    """Simulate one block of the comparison `spec_json`; its summary, msgpack-encoded.

    Runs in a worker process or a Dask task; the compiled arms of the last few specs are
    kept, so the blocks of one comparison (or one PSA draw) compile their protocols once
    per process.
    """
    key = hashlib.sha256(spec_json).digest()
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
    if entry is None:
        spec = msgspec.json.decode(spec_json, type=CompareSpec, dec_hook=dec_hook)
        entry = (compile_arms(_protocols(spec)), spec)
        with _CACHE_LOCK:
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = entry
    model, spec = entry
    summary = simulate_compare_block(model, spec.params, spec.eye, block, shards)
    return msgspec.msgpack.encode(summary)


def _protocols(spec: CompareSpec) -> list[TimeBasedProtocol]:
    protocols = []
    for arm in spec.arms:
        if not isinstance(arm.protocol, TimeBasedProtocol):
            raise ParameterError(f"arm {arm.name}: comparisons need time-based protocols")
        protocols.append(arm.protocol)
    return protocols


def run_blocks(
    directory: Path,
    spec: CompareSpec,
    workers: int,
    on_block: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    client: Any | None = None,
) -> CompareTotals:
    """Simulate every block not on disk yet, then merge all of them in block order.

    `on_block(patients_done, patients_total)` is called after each block (and once at the
    start); setting `cancel` stops the run (`CompareCancelled`) with finished blocks kept.
    Blocks run in `workers` local processes or, given `client` (a `distributed.Client` the
    caller owns and closes), as tasks on its Dask cluster; the totals are the same.
    """
    plan = block_plan(spec)
    done = finished_blocks(directory)
    total = spec.params.n_patients
    patients_done = sum(summary.patients for summary in done.values())
    if on_block:
        on_block(patients_done, total)
    missing = [b for b in range(len(plan)) if b not in done]
    if missing:
        write_status(directory, "running")
        for summary in _simulate(
            directory, spec, plan, missing, workers, on_block, cancel, patients_done, total, client
        ):
            done[summary.block] = summary
    totals = merge_blocks(list(done.values()))
    return totals


def _simulate(
    directory: Path,
    spec: CompareSpec,
    plan: Sequence[list[int]],
    missing: Sequence[int],
    workers: int,
    on_block: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    patients_done: int,
    total: int,
    client: Any | None,
) -> list[BlockSummary]:
    spec_json = msgspec.json.encode(spec)
    workers = max(1, min(workers, len(missing)))
    in_process = os.environ.get("AMDSIM_COMPARE_IN_PROCESS") == "1"
    if client is None and workers == 1 and in_process:
        return _simulate_here(
            directory, spec, plan, missing, on_block, cancel, patients_done, total
        )
    decoder = msgspec.msgpack.Decoder(BlockSummary)
    results: list[BlockSummary] = []
    with open_blocks(workers, client) as blocks:
        pending = {
            blocks.submit(f"compare-block-{b}", run_block_task, spec_json, b, plan[b]): b
            for b in missing
        }
        while pending:
            finished, _ = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if cancel is not None and cancel.is_set():
                raise CompareCancelled
            for future in finished:
                pending.pop(future)
                data = blocks.result(future)
                summary = decoder.decode(data)
                _save_block(directory, summary.block, data)
                results.append(summary)
                patients_done += summary.patients
                if on_block:
                    on_block(patients_done, total)
    return results


def _simulate_here(
    directory: Path,
    spec: CompareSpec,
    plan: Sequence[list[int]],
    missing: Sequence[int],
    on_block: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    patients_done: int,
    total: int,
) -> list[BlockSummary]:
    """The same blocks in this process (for profiling and debugging)."""
    model = compile_arms(_protocols(spec))
    results = []
    for b in missing:
        if cancel is not None and cancel.is_set():
            raise CompareCancelled
        summary = simulate_compare_block(model, spec.params, spec.eye, b, plan[b])
        _save_block(directory, b, msgspec.msgpack.encode(summary))
        results.append(summary)
        patients_done += summary.patients
        if on_block:
            on_block(patients_done, total)
    return results


def _save_block(directory: Path, block: int, data: bytes) -> None:
    write_atomically(directory / BLOCKS_DIR / f"block-{block:06d}.msgpack", data)
