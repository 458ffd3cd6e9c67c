"""A run's summary statistics: per shard in the workers, merged in the writer, read back.

Workers compute `shard_stats` for every shard they simulate (exact counts and t-digests);
the writer adds them up in a `StatsAccumulator`; readers ask the merged `RunStatistics` for
totals, the monthly VA bands and the outcome table (engine.stats). Inputs are simulated
once per environment by `setup_cache`.
"""

from __future__ import annotations

import msgspec

from benchmarks._shared import protocol_of, run_parameters
from engine.model.interface import compile_model
from engine.model.shards import plan_blocks
from engine.stats.run_stats import StatsAccumulator
from engine.stats.shard_stats import ShardStatsState, shard_stats

SHARD_PATIENTS = 4096  # the default shard size
MERGED_SHARDS = 32
MERGED_SHARD_SIZE = 1024  # small shards: many of them for a cheap cohort


def setup_cache() -> dict:
    """One default-size shard per model, and the encoded statistics of 32 v2 shards."""
    shards = {}
    for model in ("v1", "v2"):
        params = run_parameters(SHARD_PATIENTS, shard_size=SHARD_PATIENTS)
        (output,) = compile_model(protocol_of(model)).simulate_shards(params, [0])
        shards[model] = (output.patients, output.visits, params.horizon_days)
    params = run_parameters(MERGED_SHARDS * MERGED_SHARD_SIZE, shard_size=MERGED_SHARD_SIZE)
    compiled = compile_model(protocol_of("v2"))
    states = []
    for block in plan_blocks(params):
        for output in compiled.simulate_shards(params, block):
            stats = shard_stats(output.patients, output.visits, params.horizon_days)
            states.append(msgspec.msgpack.encode(stats.state()))
    return {"shards": shards, "states": states, "horizon_days": params.horizon_days}


def _accumulate(data: dict) -> StatsAccumulator:
    decoder = msgspec.msgpack.Decoder(ShardStatsState)
    accumulator = StatsAccumulator(len(data["states"]), data["horizon_days"])
    for shard, encoded in enumerate(data["states"]):
        accumulator.add(shard, 0, 1, decoder.decode(encoded))
    return accumulator


class ShardStatistics:
    """`shard_stats` of one 4096-patient x 5-year shard, as a worker computes it."""

    params = ["v1", "v2"]
    param_names = ["model"]

    def setup(self, data: dict, model: str) -> None:
        self.patients, self.visits, self.horizon_days = data["shards"][model]

    def time_shard_stats(self, data: dict, model: str) -> None:
        """Counts (histograms, per-month tables) and t-digests of the shard."""
        shard_stats(self.patients, self.visits, self.horizon_days)


class MergedStatistics:
    """32 shards' statistics merged by the writer's accumulator, then read as a reader does."""

    def setup(self, data: dict) -> None:
        self.statistics = _accumulate(data).result()

    def time_accumulate_and_result(self, data: dict) -> None:
        """Decode and add 32 shard statistics (counts add, digests merge in a fixed tree)."""
        _accumulate(data).result()

    def time_totals_summary(self, data: dict) -> None:
        """Headline outcomes (`summary_stats`) from merged statistics."""
        self.statistics.totals().summary()

    def time_monthly_vision(self, data: dict) -> None:
        """VA quantile bands for every month of follow-up (the VA-progression chart)."""
        self.statistics.monthly_vision()

    def time_outcome_table(self, data: dict) -> None:
        """The outcome table: VA change at months 3-60, LOCF and observed, year workload."""
        self.statistics.outcome_table()
