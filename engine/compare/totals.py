"""Merge block summaries of a comparison, always in block order.

Integer counts add exactly; floating moments merge pairwise in block order, so the totals
are the same bits whatever the number of processes, the order blocks finished in, or a
resume in between (DESIGN section 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.compare.block import PAIRED_MONTHS, BlockSummary
from engine.compare.matrix_moments import MatrixMoments
from engine.stats.moments import Moments
from engine.stats.shard_stats import Counts

__all__ = ["ArmTotals", "CompareTotals", "PairTotals", "merge_blocks"]


@dataclass
class ArmTotals:
    """One arm over every block merged."""

    counts: Counts
    features: MatrixMoments
    weekly: np.ndarray  # (visit types, calendar weeks)
    visits: int


@dataclass
class PairTotals:
    """Paired differences of arm `second` minus arm `first`."""

    first: int
    second: int
    features: MatrixMoments  # moments of [F_second - F_first, F_first]
    va: list[Moments]  # at PAIRED_MONTHS
    same_patients: bool


@dataclass
class CompareTotals:
    """Every arm and pair of a comparison."""

    patients: int
    arms: list[ArmTotals]
    pairs: list[PairTotals]


def merge_blocks(blocks: Sequence[BlockSummary]) -> CompareTotals:
    """Totals of `blocks` (any order given; merged in block order)."""
    ordered = sorted(blocks, key=lambda summary: summary.block)
    if not ordered:
        raise ValueError("a comparison needs at least one block")
    first = ordered[0]
    arms = []
    for a in range(len(first.arms)):
        counts = Counts()
        features = None
        weekly = None
        visits = 0
        for summary in ordered:
            arm = summary.arms[a]
            counts.add(Counts.from_state(arm.counts))
            part = MatrixMoments.from_state(arm.features)
            features = part if features is None else features.merge(part)
            week_counts = np.asarray(arm.weekly, dtype=np.int64)
            weekly = week_counts if weekly is None else weekly + week_counts
            visits += arm.visits
        assert features is not None and weekly is not None
        arms.append(ArmTotals(counts, features, weekly, visits))
    pairs = []
    for p, pair in enumerate(first.pairs):
        features = MatrixMoments.from_state(pair.features)
        va = list(pair.va)
        same = pair.same_patients
        for summary in ordered[1:]:
            other = summary.pairs[p]
            features = features.merge(MatrixMoments.from_state(other.features))
            va = [mine.merge(theirs) for mine, theirs in zip(va, other.va, strict=True)]
            same = same and other.same_patients
        assert len(va) == len(PAIRED_MONTHS)
        pairs.append(PairTotals(pair.first, pair.second, features, va, same))
    return CompareTotals(sum(s.patients for s in ordered), arms, pairs)
