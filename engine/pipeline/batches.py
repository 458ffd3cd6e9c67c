"""Turn shard outputs into channel batches and channel batches into Arrow record batches.

A shard whose encoded size exceeds a channel slot is cut by patient into parts that fit.
The cut depends only on the shard's rows and the slot size, so a retried shard is cut the
same way and the writer can recognise parts it already has. A single patient larger than a
slot cannot be cut and is refused with `MessageTooLargeError`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import zstandard

from engine.columns import (
    VISIT_COLUMNS,
    Columns,
    ColumnSpec,
    ShardOutput,
    patient_columns,
    schema_of,
)
from engine.stats.shard_stats import ShardStats, ShardStatsState, shard_stats
from ipc.channel import MessageTooLargeError
from ipc.messages import ColumnBuffers, PatientBatch, TableBuffers

if TYPE_CHECKING:
    import pyarrow as pa

    from engine.pipeline.stage_clock import StageClock

__all__ = ["DecodedBatch", "decode_batch", "encode_shard"]

# msgpack framing per column and per message, generously rounded up.
_COLUMN_OVERHEAD = 32
_MESSAGE_OVERHEAD = 1024
_EMPTY = memoryview(b"")
_STATS_ENCODER = msgspec.msgpack.Encoder()
_STATS_DECODER = msgspec.msgpack.Decoder(ShardStatsState)
# Statistics are mostly zeros (per-month tables): zstd shrinks them 7-90x for 0.2 ms a shard.
_COMPRESSOR = zstandard.ZstdCompressor(level=1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def encode_shard(
    output: ShardOutput,
    attempt: int,
    horizon_days: int,
    slot_bytes: int,
    clock: StageClock | None = None,
) -> list[PatientBatch]:
    """The shard as one batch, or as several parts if it does not fit `slot_bytes`.

    With a `clock`, the time spent on statistics is charged to its ``statistics`` stage.
    """
    timed = clock.stage if clock is not None else lambda _stage: contextlib.nullcontext()
    counts = output.patients["visits"].astype(np.int64)
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    with timed("statistics"):
        whole_stats = shard_stats(output.patients, output.visits, horizon_days)
    whole = _part(output, starts, 0, len(counts), attempt, whole_stats)
    if _size(whole) <= slot_bytes:
        return [whole]
    pieces = []
    cuts = _cut_points(counts, slot_bytes - len(whole.stats), output.patient_columns)
    pending = list(itertools.pairwise(cuts))
    while pending:
        lo, hi = pending.pop(0)
        patients = {name: column[lo:hi] for name, column in output.patients.items()}
        visits = {name: column[starts[lo] : starts[hi]] for name, column in output.visits.items()}
        with timed("statistics"):
            stats = shard_stats(patients, visits, horizon_days, sketches=False)
        if not pieces:  # the first part carries the whole shard's sketches
            stats = ShardStats(stats.counts, whole_stats.sketches)
        piece = _part(output, starts, lo, hi, attempt, stats)
        if _size(piece) <= slot_bytes:
            pieces.append(piece)
        elif hi - lo == 1:
            raise MessageTooLargeError(
                f"one patient needs {_size(piece) / 2**20:.2f} MiB, more than a "
                f"{slot_bytes / 2**20:.2f} MiB channel slot; use larger slots"
            )
        else:  # its statistics were larger than budgeted: halve it
            middle = lo + (hi - lo) // 2
            pending[:0] = [(lo, middle), (middle, hi)]
    return [
        msgspec.structs.replace(p, part=i, part_count=len(pieces)) for i, p in enumerate(pieces)
    ]


def _part(
    output: ShardOutput, starts: np.ndarray, lo: int, hi: int, attempt: int, stats: ShardStats
) -> PatientBatch:
    patients = {name: column[lo:hi] for name, column in output.patients.items()}
    visits = {name: column[starts[lo] : starts[hi]] for name, column in output.visits.items()}
    return PatientBatch(
        shard=output.shard_index,
        part=0,
        part_count=1,
        attempt=attempt,
        first_patient=int(patients["patient_id"][0]),
        patients=_table(patients, output.patient_columns),
        visits=_table(visits, VISIT_COLUMNS),
        stats=_COMPRESSOR.compress(_STATS_ENCODER.encode(stats.state())),
        format_version=output.format_version,
    )


def _size(batch: PatientBatch) -> int:
    """Encoded size of a batch, rounded up by the msgpack framing."""
    buffers = sum(
        column.data.nbytes + column.validity.nbytes  # nbytes: len() counts items, not bytes
        for table in (batch.patients, batch.visits)
        for column in table.columns
    )
    return (
        buffers
        + len(batch.stats)
        + _MESSAGE_OVERHEAD
        + _COLUMN_OVERHEAD * (len(batch.patients.columns) + len(batch.visits.columns))
    )


class DecodedBatch:
    """A received batch as Arrow record batches over the channel slot, plus its statistics."""

    __slots__ = ("batch", "patients", "stats", "visits")

    def __init__(self, batch: PatientBatch) -> None:
        self.batch = batch
        self.patients = _record_batch(batch.patients, patient_columns(batch.format_version))
        self.visits = _record_batch(batch.visits, VISIT_COLUMNS)
        self.stats = _STATS_DECODER.decode(_DECOMPRESSOR.decompress(batch.stats))


def decode_batch(batch: PatientBatch) -> DecodedBatch:
    """Wrap a received batch's buffers as Arrow (no copy; valid until the slot is released)."""
    return DecodedBatch(batch)


def _cut_points(
    visit_counts: np.ndarray, slot_bytes: int, patient_specs: tuple[ColumnSpec, ...]
) -> list[int]:
    """Patient indices where parts start, plus the end, for parts of about `slot_bytes`."""
    patient_bytes = sum(c.dtype.itemsize for c in patient_specs) + 2
    visit_bytes = sum(c.dtype.itemsize for c in VISIT_COLUMNS) + 1
    overhead = _MESSAGE_OVERHEAD + _COLUMN_OVERHEAD * (len(patient_specs) + len(VISIT_COLUMNS))
    budget = max(slot_bytes - overhead, patient_bytes + visit_bytes)
    cost = patient_bytes + visit_counts * visit_bytes
    cumulative = np.cumsum(cost)
    cuts = [0]
    while cuts[-1] < len(cost):
        used = cumulative[cuts[-1] - 1] if cuts[-1] else 0
        cuts.append(int(np.searchsorted(cumulative, used + budget, side="right")))
    return cuts


def _table(columns: Columns, specs: tuple[ColumnSpec, ...]) -> TableBuffers:
    buffers = []
    for spec in specs:
        null_count, data, validity = spec.to_buffers(columns[spec.name])
        buffers.append(
            ColumnBuffers(
                null_count, memoryview(data), _EMPTY if validity is None else memoryview(validity)
            )
        )
    return TableBuffers(length=len(columns[specs[0].name]), columns=buffers)


def _record_batch(table: TableBuffers, specs: tuple[ColumnSpec, ...]) -> pa.RecordBatch:
    """Arrow over the received buffers; pyarrow is loaded here, in the writer only."""
    import pyarrow as pa  # noqa: PLC0415 - workers never decode, so never load pyarrow

    arrays = [
        spec.from_buffers(
            table.length,
            column.null_count,
            column.data,
            column.validity if column.null_count else None,
        )
        for spec, column in zip(specs, table.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema_of(specs))
