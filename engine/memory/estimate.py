"""Estimate a streaming run's peak memory and disk use before it starts, and refuse what
does not fit.

Visits per patient come from simulating shard 0 in this process (a few milliseconds; shard
0's patients enrol first, so with recruitment over time this errs high). Bytes per visit on
disk and the memory of each process are measured figures (`perf/bench_disk_bytes.py`,
`perf/bench_memory.py`) with a margin. The memory estimate is what the run adds to the
process tree that starts it: the supervisor's growth, the writer with its lanes, each worker
with the rows of one block of shards, and the channel's slots, counted twice because a slot
is resident in the worker that fills it and in the writer that reads it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.columns import PATIENT_COLUMNS, VISIT_COLUMNS
from engine.errors import DiskSpaceError
from engine.memory.monitor import MemoryMonitor, MemorySnapshot
from engine.model.any_protocol import AnyProtocol
from engine.model.interface import compile_model
from engine.model.parameters import RunParameters
from engine.model.shards import BLOCK_PATIENTS

if TYPE_CHECKING:
    from engine.pipeline.options import PipelineOptions

__all__ = ["BYTES_PER_VISIT", "RunEstimate", "check_run_fits", "estimate_run"]

MiB = 1 << 20
# Whole run directory per visit (patients rows included), measured by perf/bench_disk_bytes.py
# on the default protocol, plus about 25 %.
BYTES_PER_VISIT = {"zstd": 2.9, "snappy": 5.1, "gzip": 2.4, "none": 22.8}
# Resident memory of each process without its data, measured by perf/bench_memory.py.
SUPERVISOR_GROWTH_BYTES = 16 * MiB  # the supervisor's own growth while it runs
WRITER_BYTES = 100 * MiB
WRITER_LANE_BYTES = 24 * MiB  # a lane's open Parquet writers and their column buffers
WORKER_BYTES = 45 * MiB
# Per visit row of a block being simulated: the visit-major chunks, the scatter into
# (patient, visit) order and the encoded copy, ~15 bytes each, plus numpy temporaries.
WORKER_BYTES_PER_ROW = 64
DISK_MARGIN = 1.10
_PATIENT_ROW_BYTES = sum(c.dtype.itemsize for c in PATIENT_COLUMNS) + 2  # what BYTES_PER_VISIT saw
_VISIT_ROW_BYTES = (
    sum(c.dtype.itemsize for c in VISIT_COLUMNS) + 1
)  # keep a tenth spare: file systems misbehave when completely full


@dataclass(frozen=True)
class RunEstimate:
    """What a run is expected to need at its peak, and what the estimate rests on.

    `memory_bytes` is what the run adds to the tree of the process that starts it.
    """

    visits: int
    visits_per_patient: float
    memory_bytes: int
    disk_bytes: int
    bytes_per_visit: float

    def describe(self) -> str:
        return (
            f"about {self.visits:,} visits ({self.visits_per_patient:.1f} per patient), "
            f"{self.memory_bytes / MiB:,.0f} MiB more memory at peak, "
            f"{self.disk_bytes / MiB:,.0f} MiB on disk"
        )


def estimate_run(
    protocol: AnyProtocol, params: RunParameters, options: PipelineOptions
) -> RunEstimate:
    """Peak memory of the whole process tree and bytes on disk for this run."""
    (pilot,) = compile_model(protocol).simulate_shards(params, [0])
    visits_per_patient = pilot.visit_count / max(1, len(pilot.patients["patient_id"]))
    visits = round(visits_per_patient * params.n_patients)
    # The model's patients table (format 2 has more columns than BYTES_PER_VISIT was measured
    # with: counted uncompressed on disk, which errs on the safe side).
    patient_row_bytes = sum(c.dtype.itemsize for c in pilot.patient_columns) + 2
    extra_patient_bytes = max(0, patient_row_bytes - _PATIENT_ROW_BYTES) * params.n_patients
    block_patients = min(params.n_patients, max(params.shard_size, BLOCK_PATIENTS))
    worker = WORKER_BYTES + int(block_patients * visits_per_patient * WORKER_BYTES_PER_ROW)
    slots = options.slots_per_worker * options.workers + 1
    # A slot is resident only as far as batches have filled it: about one shard each.
    shard_bytes = params.shard_size * (patient_row_bytes + visits_per_patient * _VISIT_ROW_BYTES)
    slot_resident = min(options.slot_bytes, int(shard_bytes) + (64 << 10))
    memory = (
        SUPERVISOR_GROWTH_BYTES
        + WRITER_BYTES
        + options.writer_lanes * WRITER_LANE_BYTES
        + options.workers * worker
        + 2 * slots * slot_resident
    )
    per_visit = BYTES_PER_VISIT[options.compression]
    return RunEstimate(
        visits=visits,
        visits_per_patient=visits_per_patient,
        memory_bytes=memory,
        disk_bytes=int(visits * per_visit) + extra_patient_bytes,
        bytes_per_visit=per_visit,
    )


def check_run_fits(
    estimate: RunEstimate, monitor: MemoryMonitor, run_dir: Path, free_bytes: int | None = None
) -> MemorySnapshot:
    """Raise `MemoryBudgetError` or `DiskSpaceError` when the run cannot fit.

    Memory: what this process tree uses now plus the run's estimate must stay out of red.
    Disk: the estimate plus a margin must fit in the free space of `run_dir`'s file system
    (`free_bytes` overrides the measurement, for tests). Returns the memory measurement
    the run was judged on.
    """
    snapshot = monitor.require(estimate.memory_bytes, f"this run ({estimate.describe()})")
    if free_bytes is None:
        free_bytes = shutil.disk_usage(_existing_parent(run_dir)).free
    needed = int(estimate.disk_bytes * DISK_MARGIN)
    if needed > free_bytes:
        raise DiskSpaceError(
            f"this run needs about {needed / MiB:,.0f} MiB on disk ({estimate.visits:,} visits "
            f"at {estimate.bytes_per_visit:g} bytes each, plus 10 %), but only "
            f"{free_bytes / MiB:,.0f} MiB are free under {run_dir}; free space, choose "
            f"another --runs-dir, simulate fewer patients or years, or use --compression zstd"
        )
    return snapshot


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path
