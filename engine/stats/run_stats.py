"""A run's statistics: merged shard statistics, the accumulator, and what readers ask of them.

`StatsAccumulator` takes shard parts as they are written (in any order, once each) and gives
`RunStatistics`, identical whatever the order: counts add exactly, sketches merge in shard
order through `engine.stats.tree`. Its `state()` is what a checkpoint stores to resume.

Readers (CLI, dashboard, `SimulationResults.statistics()`) get exact VA quantiles by month,
distributions, workload per calendar month and sketched quantiles without touching rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from engine.model.parameters import DAYS_PER_MONTH
from engine.stats.outcome_table import OutcomeTable, outcome_table
from engine.stats.shard_stats import (
    SKETCH_NAMES,
    VA_VALUES,
    Counts,
    CountsState,
    ShardStats,
    ShardStatsState,
    Sketches,
    SketchesState,
)
from engine.stats.tree import ShardTree
from engine.totals import RunTotals

__all__ = [
    "STATS_FORMAT_VERSION",
    "STATS_UPGRADES",
    "AccumulatorState",
    "MonthlyVision",
    "RunStatistics",
    "RunStatisticsState",
    "StatsAccumulator",
    "histogram_quantiles",
    "stats_version",
]

# Version 2 added the outcome table's counts (format-2 runs: `engine.stats.outcome_counts`).
# Statistics are written in the version of what they hold (`stats_version`): a format-1 run's
# are version 1, unchanged; version 1 files read as version 2 without outcome counts.
STATS_FORMAT_VERSION = 2
STATS_UPGRADES: dict = {1: lambda document: document}  # version n -> n + 1 (engine.formats)
DEFAULT_BANDS = (0.05, 0.25, 0.5, 0.75, 0.95)


def stats_version(counts: Counts) -> int:
    """The statistics format `counts` need: 2 with outcome-table counts, else 1."""
    return 2 if "outcome_va" in counts.arrays else 1


class RunStatisticsState(msgspec.Struct, frozen=True, kw_only=True):
    """`RunStatistics` as stored in `stats.json` and in Parquet metadata."""

    format_version: int = STATS_FORMAT_VERSION
    horizon_days: int
    shards: int
    counts: CountsState
    sketches: SketchesState | None = None


class MonthlyVision(msgspec.Struct, frozen=True, kw_only=True):
    """VA by month since enrollment: patients seen, mean, sd and exact quantiles per month."""

    month: list[int]
    count: list[int]
    mean: list[float]
    std: list[float]
    quantiles: dict[str, list[float]]


def histogram_quantiles(counts: np.ndarray, qs: Sequence[float], offset: int = 0) -> list[float]:
    """Exact quantiles of integer data given as counts per value (numpy's 'inverted_cdf').

    NaN where there is no data.
    """
    total = int(counts.sum())
    if total == 0:
        return [float("nan")] * len(qs)
    cumulative = np.cumsum(counts)
    ranks = np.maximum(np.ceil(np.asarray(qs) * total), 1)
    return [float(np.searchsorted(cumulative, rank) + offset) for rank in ranks]


class RunStatistics:
    """Statistics of a run, or of the shards written so far."""

    def __init__(
        self, counts: Counts, sketches: Sketches | None, horizon_days: int, shards: int
    ) -> None:
        self.counts = counts
        self.sketches = sketches
        self.horizon_days = horizon_days
        self.shards = shards

    # -- storage --------------------------------------------------------------------------

    def state(self) -> RunStatisticsState:
        """Serialisable form."""
        return RunStatisticsState(
            format_version=stats_version(self.counts),
            horizon_days=self.horizon_days,
            shards=self.shards,
            counts=self.counts.state(),
            sketches=None if self.sketches is None else self.sketches.state(),
        )

    @classmethod
    def from_state(cls, state: RunStatisticsState) -> RunStatistics:
        """Rebuild from `state()`."""
        sketches = None if state.sketches is None else Sketches.from_state(state.sketches)
        return cls(Counts.from_state(state.counts), sketches, state.horizon_days, state.shards)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunStatistics):
            return False
        return msgspec.msgpack.encode(self.state()) == msgspec.msgpack.encode(other.state())

    __hash__ = None  # type: ignore[assignment]

    # -- what readers ask -----------------------------------------------------------------

    def totals(self) -> RunTotals:
        """The headline counts and sums (also in the manifest)."""
        if "totals" not in self.counts.arrays:
            return RunTotals()
        patients, visits, injections, follow_up = (int(v) for v in self.counts["totals"])
        values = np.arange(VA_VALUES)
        return RunTotals(
            patients=patients,
            visits=visits,
            injections=injections,
            follow_up_days=follow_up,
            baseline_vision_sum=int((self.counts["baseline_va"] * values).sum()),
            final_vision_sum=int((self.counts["final_va"] * values).sum()),
            discontinued_by_reason=tuple(int(c) for c in self.counts["discontinuation_reason"]),
            final_state_counts=tuple(int(c) for c in self.counts["final_state"]),
        )

    def outcome_table(self) -> OutcomeTable | None:
        """The outcome table (docs/model.md 6); None for a run without it (format 1)."""
        return outcome_table(self.counts)

    def va_quantiles(self, which: str, qs: Sequence[float] = DEFAULT_BANDS) -> list[float]:
        """Exact quantiles of baseline VA, final VA or VA change ("baseline", "final", "change")."""
        if which == "change":
            return histogram_quantiles(self.counts["va_change"], qs, offset=-100)
        return histogram_quantiles(self.counts[f"{which}_va"], qs)

    def distribution(self, name: str) -> np.ndarray:
        """Counts per value of a histogram (e.g. "final_va", "injections_per_patient")."""
        return self.counts[name].copy()

    def monthly_vision(self, qs: Sequence[float] = DEFAULT_BANDS) -> MonthlyVision:
        """VA by month since enrollment, for months with at least one visit."""
        table = self.counts["va_by_month"]
        values = np.arange(VA_VALUES)
        rows = [m for m in range(table.shape[0]) if table[m].sum() > 0]
        count, mean, std = [], [], []
        quantiles: dict[str, list[float]] = {f"p{round(q * 100)}": [] for q in qs}
        for m in rows:
            counts = table[m]
            n = int(counts.sum())
            mu = float((counts * values).sum() / n)
            count.append(n)
            mean.append(mu)
            std.append(
                float(np.sqrt((counts * (values - mu) ** 2).sum() / (n - 1)))
                if n > 1
                else float("nan")
            )
            for key, value in zip(quantiles, histogram_quantiles(counts, qs), strict=True):
                quantiles[key].append(value)
        return MonthlyVision(month=rows, count=count, mean=mean, std=std, quantiles=quantiles)

    def states_by_month(self) -> np.ndarray:
        """Visits per (month since enrollment, disease state)."""
        return self.counts["state_by_month"].copy()

    def workload(self) -> dict[str, np.ndarray]:
        """Per calendar month (30.4375 days): visits, injections and patients active."""
        months = self.counts["calendar_visits"].shape[0]
        return {
            "month_start_day": np.floor(np.arange(months) * DAYS_PER_MONTH).astype(np.int64),
            "visits": self.counts["calendar_visits"].copy(),
            "injections": self.counts["calendar_injections"].copy(),
            "active_patients": self.counts["calendar_active"].copy(),
        }

    def sketch_quantiles(self, name: str, qs: Sequence[float] = DEFAULT_BANDS) -> list[float]:
        """t-digest quantiles of a sketched quantity (see `SKETCH_NAMES`); NaN if empty."""
        if name not in SKETCH_NAMES:
            raise KeyError(f"no sketch {name!r}; sketches: {', '.join(SKETCH_NAMES)}")
        sketch = None if self.sketches is None else getattr(self.sketches, name)
        if sketch is None or sketch.digest.count == 0:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.atleast_1d(sketch.digest.quantile(np.asarray(qs)))]

    def sketch_mean(self, name: str) -> float:
        """Mean of a sketched quantity (exact up to rounding); NaN if empty."""
        sketch = None if self.sketches is None else getattr(self.sketches, name)
        return sketch.moments.mean if sketch is not None and sketch.moments.count else float("nan")


class AccumulatorState(msgspec.Struct, frozen=True, kw_only=True):
    """A `StatsAccumulator` as a checkpoint stores it."""

    format_version: int = STATS_FORMAT_VERSION
    shard_count: int
    horizon_days: int
    counts: CountsState
    tree: list[tuple[int, int, SketchesState]] = []
    pending: list[tuple[int, int, int, SketchesState]] = []  # shard, part, part_count, sketches
    shards_done: int = 0


class StatsAccumulator:
    """Adds up shard parts as they are written; the result does not depend on their order."""

    def __init__(self, shard_count: int, horizon_days: int) -> None:
        self.shard_count = shard_count
        self.horizon_days = horizon_days
        self.counts = Counts()
        self.tree: ShardTree[Sketches] = ShardTree(shard_count, Sketches.merge_in_order)
        self.pending: dict[int, dict[int, Sketches]] = {}
        self.part_counts: dict[int, int] = {}
        self.shards_done = 0

    def add(
        self, shard: int, part: int, part_count: int, stats: ShardStats | ShardStatsState
    ) -> None:
        """Add one shard part, exactly once."""
        if isinstance(stats, ShardStatsState):
            stats = ShardStats.from_state(stats)
        self.add_sketches(shard, part, part_count, stats.sketches)
        self.counts.add(stats.counts)

    def add_counts(self, counts: Counts) -> None:
        """Add counts (of any set of parts whose sketches are added with `add_sketches`)."""
        self.counts.add(counts)

    def add_sketches(self, shard: int, part: int, part_count: int, sketches: Sketches) -> None:
        """Add one shard part's sketches, exactly once; shards complete in the tree."""
        parts = self.pending.setdefault(shard, {})
        if part in parts:
            raise ValueError(f"shard {shard} part {part} was already added")
        parts[part] = sketches
        self.part_counts[shard] = part_count
        if len(parts) == part_count:
            del self.pending[shard]
            self.tree.add(shard, Sketches.merge_in_order([parts[p] for p in range(part_count)]))
            self.shards_done += 1

    def result(self) -> RunStatistics:
        """Statistics of everything added so far (complete shards' sketches only)."""
        counts = Counts({name: values.copy() for name, values in self.counts.arrays.items()})
        return RunStatistics(counts, self.tree.result(), self.horizon_days, self.shards_done)

    def state(self) -> AccumulatorState:
        """Everything needed to carry on after a restart."""
        return AccumulatorState(
            format_version=stats_version(self.counts),
            shard_count=self.shard_count,
            horizon_days=self.horizon_days,
            counts=self.counts.state(),
            tree=[(level, index, sketches.state()) for level, index, sketches in self.tree.nodes()],
            pending=[
                (shard, part, self.part_counts[shard], sketches.state())
                for shard, parts in sorted(self.pending.items())
                for part, sketches in sorted(parts.items())
            ],
            shards_done=self.shards_done,
        )

    @classmethod
    def from_state(cls, state: AccumulatorState) -> StatsAccumulator:
        """Rebuild from `state()`."""
        accumulator = cls(state.shard_count, state.horizon_days)
        accumulator.counts = Counts.from_state(state.counts)
        accumulator.tree = ShardTree.from_nodes(
            state.shard_count,
            Sketches.merge_in_order,
            [
                (level, index, Sketches.from_state(sketches))
                for level, index, sketches in state.tree
            ],
        )
        for shard, part, part_count, sketches in state.pending:
            accumulator.pending.setdefault(shard, {})[part] = Sketches.from_state(sketches)
            accumulator.part_counts[shard] = part_count
        accumulator.shards_done = state.shards_done
        return accumulator
