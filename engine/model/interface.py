"""The one model interface the rest of the engine depends on.

A protocol compiles once per process into a `CompiledModel`; the model then simulates blocks
of consecutive shards into one `ShardOutput` (rows and per-patient outcomes) per shard. The
pipeline, the in-process runner and the memory estimate call only this, so models can sit side
by side in `engine.model` without special cases elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from engine.columns import ShardOutput
from engine.model.parameters import RunParameters
from engine.model.v1 import kernel as visit_kernel
from engine.model.v1.protocol import Protocol
from engine.model.v1.tables import ModelTables
from engine.model.v1.tables import compile_protocol as compile_visit_tables
from engine.model.v2.model import compile_time_based_model
from engine.model.v2.schema import TimeBasedProtocol

__all__ = ["AnyProtocol", "CompiledModel", "VisitBasedModel", "compile_model"]

AnyProtocol = Protocol | TimeBasedProtocol


class CompiledModel(TypingProtocol):
    """A protocol ready to simulate: lookup tables built once, shared by every block."""

    def simulate_shards(
        self, params: RunParameters, shard_indices: Sequence[int]
    ) -> list[ShardOutput]:
        """Simulate consecutive shards together; one `ShardOutput` per shard, in order."""
        ...


@dataclass(frozen=True)
class VisitBasedModel:
    """The visit-based model (DESIGN section 4) compiled from one protocol."""

    tables: ModelTables

    def simulate_shards(
        self, params: RunParameters, shard_indices: Sequence[int]
    ) -> list[ShardOutput]:
        """Simulate consecutive shards with the visit-based kernel."""
        return visit_kernel.simulate_shards(self.tables, params, shard_indices)


def compile_model(protocol: AnyProtocol) -> CompiledModel:
    """Compile `protocol` into the model its file asks for."""
    if isinstance(protocol, TimeBasedProtocol):
        return compile_time_based_model(protocol)
    return VisitBasedModel(compile_visit_tables(protocol))
