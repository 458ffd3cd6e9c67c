"""The writer's work without its process: channel batches in, Parquet part files out.

The writer process itself needs a channel and a supervisor, so these benchmarks call the
functions it runs on each batch, in its order: decode the msgpack message and wrap its
buffers as Arrow (`decode_batch`), then append to the rolling part files and close them
(`PartFiles.write`, `PartFiles.roll`: Parquet encoding, compression, CRCs, fsync, rename).
The batches are made once per environment by the workers' own encoder (`encode_shard`).
"""

from __future__ import annotations

import msgspec

from benchmarks._shared import new_scratch_dir, protocol_of, remove_scratch_dir, run_parameters
from engine.model.interface import compile_model
from engine.model.shards import plan_blocks
from engine.pipeline.batches import decode_batch, encode_shard
from engine.pipeline.parts import PartFiles
from engine.run_dir import RunPaths
from ipc.messages import PatientBatch

PATIENTS = 20_000
SLOT_BYTES = 4 << 20  # PipelineOptions' default channel slot
ROLL_BYTES = 128 << 20  # PipelineOptions' default: one pair of part files for this run


def encoded_batches(model: str) -> list[bytes]:
    """The cohort's shards as the channel carries them: msgpack-encoded `PatientBatch`es."""
    params = run_parameters(PATIENTS)
    compiled = compile_model(protocol_of(model))
    wires = []
    for block in plan_blocks(params):
        for output in compiled.simulate_shards(params, block):
            for batch in encode_shard(output, 0, params.horizon_days, SLOT_BYTES):
                wires.append(msgspec.msgpack.encode(batch))
    return wires


class Writer:
    """A 20k-patient x 5-year cohort's batches through the writer's decode and write steps."""

    params = (["v1", "v2"], ["zstd", "none"])
    param_names = ["model", "compression"]
    timeout = 120

    def setup_cache(self) -> dict[str, list[bytes]]:
        return {model: encoded_batches(model) for model in ("v1", "v2")}

    def setup(self, wires: dict[str, list[bytes]], model: str, compression: str) -> None:
        self.wires = wires[model]
        decoder = msgspec.msgpack.Decoder(PatientBatch)
        self.decoded = [decode_batch(decoder.decode(wire)) for wire in self.wires]
        self.folder = new_scratch_dir()
        self.runs = 0

    def teardown(self, wires: dict[str, list[bytes]], model: str, compression: str) -> None:
        remove_scratch_dir(self.folder)

    def time_decode(self, wires: dict[str, list[bytes]], model: str, compression: str) -> None:
        """Seconds to decode every batch and wrap it as Arrow record batches (no copy)."""
        decoder = msgspec.msgpack.Decoder(PatientBatch)
        for wire in self.wires:
            decode_batch(decoder.decode(wire))

    def time_write_parts(self, wires: dict[str, list[bytes]], model: str, compression: str) -> None:
        """Seconds to write every batch into a pair of part files and close them."""
        self.runs += 1
        parts = PartFiles(
            RunPaths(self.folder / f"run-{self.runs}"),
            compression,
            ROLL_BYTES,
            {"amdsim.run_id": "asv-benchmark"},
        )
        for decoded in self.decoded:
            parts.write(decoded)
        parts.roll()
