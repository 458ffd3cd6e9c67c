"""How a streaming run is executed: `PipelineOptions` and the defaults filled into it.

Below both the supervisor and what plans a run before it starts (`engine.memory.estimate`,
the CLI, the dashboard), so that none of those imports the supervisor to read an option.
None of these options changes a run's output rows.
"""

from __future__ import annotations

import os

import msgspec

from engine.errors import ParameterError
from engine.manifest import ROW_GROUP_PATIENTS, Compression
from engine.model.parameters import RunParameters
from engine.model.shards import plan_blocks
from engine.profiling import ProfileTarget
from ipc.channel import bounded_credits

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "PipelineOptions",
    "default_workers",
    "default_writer_lanes",
    "resolve_options",
]

DEFAULT_CHECKPOINT_EVERY = 1_000_000  # patients: at most a few seconds of work lost to a crash


def default_writer_lanes() -> int:
    """Writer threads: one per two CPUs (a lane writes about as fast as two workers simulate), 1-4."""
    return max(1, min(4, _usable_cpus() // 2))


def default_workers() -> int:
    """One fewer than the CPUs this process may use (the writer needs one), at least 1."""
    return max(1, _usable_cpus() - 1)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class PipelineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a streaming run is executed; none of these change its output rows.

    Parameters
    ----------
    slot_bytes, slots_per_worker
        Channel slot size and how many slots each worker may fill ahead of the writer.
    roll_bytes
        Part files are closed and a new pair started once the open pair reaches this size.
    max_attempts
        Tries per shard before the run fails; also bounds worker restarts.
    row_group_patients
        Patients per Parquet row group: what one patient lookup reads (at least 1).
    checkpoint_every
        Patients between checkpoints (part files are closed and listed); None: the run's
        own setting when resuming, else `DEFAULT_CHECKPOINT_EVERY`; 0: only when files roll.
    protocol_path
        The file the protocol was loaded from, recorded with its parameter files in the
        manifest's reproducibility record (None: a protocol built in code; nothing to check
        on resume).
    """

    workers: int = 0  # 0: default_workers()
    writer_lanes: int = 0  # 0: default_writer_lanes()
    compression: Compression = "zstd"
    slot_bytes: int = 4 << 20
    slots_per_worker: int = 0  # 0: a block of shards plus one, within SENDER_SLOT_BYTES
    roll_bytes: int = 128 << 20
    max_attempts: int = 3
    checkpoint_every: int | None = None
    row_group_patients: int = ROW_GROUP_PATIENTS
    protocol_path: str | None = None
    name: str = ""  # the run's name and notes for its manifest (`engine.run_labels`)
    notes: str = ""
    metrics_interval_s: float = 0.5
    live_stats_interval_s: float = 1.0  # how often the writer rewrites live-stats.msgpack
    check_resources: bool = True  # estimate memory and disk first; refuse what does not fit
    # Where every process writes its pyinstrument profile (engine.profiling); None: no profiles.
    profile: ProfileTarget | None = None
    # Fault injection, for tests only.
    free_disk_bytes: int | None = None  # pretend the run's file system has this much free
    worker_memory_error_above_shards: int | None = None  # MemoryError on bigger batches
    writer_fail_after_bytes: int | None = None
    writer_delay_per_batch_s: float = 0.0  # a slow disk: each batch takes this much longer
    worker_fail_shard: int | None = None
    worker_fail_attempts: int = 0


def resolve_options(options: PipelineOptions, params: RunParameters) -> PipelineOptions:
    """`options` with every "0: default" filled in for this run, checked.

    What a supervisor would run with; also what estimates of the run are made from. Workers
    are capped at the run's shards: no more start than can have work.
    """
    if options.workers == 0:
        options = msgspec.structs.replace(options, workers=default_workers())
    if options.workers < 1:
        raise ParameterError(f"workers must be at least 1, got {options.workers}")
    if options.workers > params.shard_count:
        # A worker without a shard would only start, wait and be stopped.
        options = msgspec.structs.replace(options, workers=params.shard_count)
    if options.writer_lanes < 0:
        raise ParameterError(f"writer lanes must be at least 1, got {options.writer_lanes}")
    if options.writer_lanes == 0:
        options = msgspec.structs.replace(options, writer_lanes=default_writer_lanes())
    if options.slots_per_worker == 0:
        shards_per_block = len(plan_blocks(params)[0])
        slots = bounded_credits(shards_per_block + 1, options.slot_bytes)
        options = msgspec.structs.replace(options, slots_per_worker=slots)
    if options.row_group_patients < 1:
        raise ParameterError(
            f"row_group_patients must be at least 1, got {options.row_group_patients}"
        )
    if options.checkpoint_every is not None and options.checkpoint_every < 0:
        raise ParameterError(
            f"checkpoint_every must be 0 (off) or a number of patients, got "
            f"{options.checkpoint_every}"
        )
    return options
