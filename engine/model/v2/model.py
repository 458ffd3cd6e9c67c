"""The time-based model behind the model interface (engine.model.interface)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.columns import ShardOutput
from engine.model.parameters import RunParameters
from engine.model.v2 import kernel
from engine.model.v2.schema import TimeBasedProtocol
from engine.model.v2.tables import TimeBasedTables, compile_time_based

__all__ = ["TimeBasedModel", "compile_time_based_model"]


@dataclass(frozen=True)
class TimeBasedModel:
    """The time-based model (docs/model.md) compiled from one protocol."""

    tables: TimeBasedTables

    def simulate_shards(
        self, params: RunParameters, shard_indices: Sequence[int]
    ) -> list[ShardOutput]:
        """Simulate consecutive shards with the time-based kernel."""
        return kernel.simulate_shards(self.tables, params, shard_indices)


def compile_time_based_model(protocol: TimeBasedProtocol) -> TimeBasedModel:
    """Tabulate `protocol` once for every block of a run."""
    return TimeBasedModel(compile_time_based(protocol))
