"""Simulate one block of shards under every arm of a comparison and summarise it.

Every arm simulates the same patient ids with the same seed, so with common random numbers
(DESIGN section 3) a patient meets the same randomness in every arm and the per-patient
difference between arms is the effect of the regimen alone. The block's summary holds, per
arm, the outcome-table counts (exact integers), the moments of the per-patient vector of
engine.compare.features and visits per calendar week by type; per pair of arms (j against
i, for i < j), the moments of the per-patient difference of that vector and of the paired
VA changes at 12, 24 and 60 months. Summaries merge in block order (engine.compare.summary),
so the result does not depend on how many processes simulated the blocks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import msgspec
import numpy as np

from engine.columns import NULL, Columns
from engine.compare.features import (
    EyeSettings,
    arm_features,
    concatenate,
    fellow_eye,
    second_eye_onset,
    second_eye_visits,
    visit_types,
    weekly_visits,
)
from engine.compare.matrix_moments import MatrixMoments, MatrixMomentsState
from engine.model.parameters import DAYS_PER_MONTH, RunParameters
from engine.model.shards import shard_bounds
from engine.model.v2.kernel import simulate_block
from engine.model.v2.schema import TimeBasedProtocol
from engine.model.v2.tables import TimeBasedTables, compile_time_based
from engine.model.v2.vision_time import VisionTimeTracker
from engine.stats.moments import Moments
from engine.stats.shard_stats import CountsState, shard_stats

__all__ = [
    "PAIRED_MONTHS",
    "ArmBlock",
    "BlockSummary",
    "CompareModel",
    "PairBlock",
    "compile_arms",
    "pairs_of",
    "simulate_compare_block",
    "weeks_of",
]

PAIRED_MONTHS = (12, 24, 60)
_DAYS_PER_YEAR = 365.25  # the tracker's years (engine.model.v2.vision_time)
_POPULATION = ("age", "sex", "responder", "baseline_vision")


class ArmBlock(msgspec.Struct, frozen=True, kw_only=True):
    """One arm's summary of a block."""

    counts: CountsState
    features: MatrixMomentsState
    weekly: list[list[int]]  # (visit types, calendar weeks)
    visits: int


class PairBlock(msgspec.Struct, frozen=True, kw_only=True):
    """Per-patient differences, arm `second` minus arm `first`, over a block.

    `features` are the moments of ``[F_second - F_first, F_first]`` (twice the arm vector's
    length): any difference of linear totals with per-arm weights (a drug price that differs
    between arms) is ``c_second @ (F_second - F_first) + (c_second - c_first) @ F_first``,
    and with equal weights it is exactly zero when the arms' vectors are equal.
    `same_patients` is False when the arms enrol different populations (ages, sex,
    baseline VA or responders differ): their differences then mix regimen and population.
    """

    first: int
    second: int
    features: MatrixMomentsState
    va: list[Moments]  # paired VA change difference at each of PAIRED_MONTHS
    same_patients: bool


class BlockSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one task returns: small, whatever the number of patients."""

    block: int
    shards: list[int]
    patients: int
    arms: list[ArmBlock]
    pairs: list[PairBlock]


class CompareModel:
    """The arms' compiled tables, built once per process."""

    def __init__(self, tables: Sequence[TimeBasedTables]) -> None:
        self.tables = list(tables)


def compile_arms(protocols: Sequence[TimeBasedProtocol]) -> CompareModel:
    """Tabulate every arm's protocol once."""
    return CompareModel([compile_time_based(protocol) for protocol in protocols])


def pairs_of(arms: int) -> list[tuple[int, int]]:
    """Every pair (i, j) with i < j, in order."""
    return list(itertools.combinations(range(arms), 2))


def weeks_of(params: RunParameters) -> int:
    """Whole calendar weeks of the horizon (a partial last week is not counted)."""
    return max(1, params.horizon_days // 7)


def simulate_compare_block(
    model: CompareModel,
    params: RunParameters,
    eye: EyeSettings,
    block: int,
    shards: Sequence[int],
) -> BlockSummary:
    """Simulate `shards` (consecutive) under every arm; their summary."""
    first_id = shard_bounds(params, shards[0])[0]
    last_start, last_size = shard_bounds(params, shards[-1])
    ids = np.arange(first_id, last_start + last_size, dtype=np.int64)
    better, fellow_band = fellow_eye(eye, params.seed, ids)
    onset = second_eye_onset(eye, params.seed, ids) if eye.second_eye_rate > 0.0 else None
    weeks = weeks_of(params)
    arms: list[ArmBlock] = []
    features: list[np.ndarray] = []
    va_changes: list[list[np.ndarray]] = []
    populations: list[Columns] = []
    for tables in model.tables:
        tracker = VisionTimeTracker(eye.edges, eye.outcome_rate)
        outputs, _ = simulate_block(tables, params, list(shards), vision_time=tracker)
        patients = concatenate([output.patients for output in outputs])
        visits = concatenate([output.visits for output in outputs])
        matrix = arm_features(
            patients, visits, tracker, better, fellow_band, tables.loading_doses, eye, onset
        )
        second = None
        if eye.second_eye_rate > 0.0:
            kind = visit_types(
                visits["visit"], visits["injected"].astype(bool), tables.loading_doses
            )
            alive_days = tracker.years.sum(axis=1) * _DAYS_PER_YEAR
            row, second_kind, when = second_eye_visits(patients, visits, kind, onset, alive_days)
            enrolled = patients["enrollment_day"].astype(np.int64)[row]
            second = (second_kind, enrolled + np.floor(when).astype(np.int64))
        counts = shard_stats(patients, visits, params.horizon_days, sketches=False).counts
        arms.append(
            ArmBlock(
                counts=counts.state(),
                features=MatrixMoments.of(matrix).state(),
                weekly=weekly_visits(visits, tables.loading_doses, weeks, second).tolist(),
                visits=len(visits["patient_id"]),
            )
        )
        features.append(matrix)
        va_changes.append(_va_changes(patients, params))
        populations.append({name: patients[name] for name in _POPULATION})
    pairs = [
        PairBlock(
            first=i,
            second=j,
            features=MatrixMoments.of(np.hstack([features[j] - features[i], features[i]])).state(),
            va=[_paired(a, b) for a, b in zip(va_changes[i], va_changes[j], strict=True)],
            same_patients=all(
                np.array_equal(populations[i][name], populations[j][name]) for name in _POPULATION
            ),
        )
        for i, j in pairs_of(len(model.tables))
    ]
    return BlockSummary(block=block, shards=list(shards), patients=len(ids), arms=arms, pairs=pairs)


def _va_changes(patients: Columns, params: RunParameters) -> list[np.ndarray]:
    """VA change from the measured baseline at each paired month (LOCF); NaN if not reached."""
    baseline = patients["baseline_vision"].astype(np.float64)
    changes = []
    for month in PAIRED_MONTHS:
        if math.floor(month * DAYS_PER_MONTH) > params.horizon_days:
            changes.append(np.full(len(baseline), np.nan))
            continue
        va = patients[f"va_m{month}"].astype(np.float64)
        changes.append(np.where(va == NULL, np.nan, va - baseline))
    return changes


def _paired(first: np.ndarray, second: np.ndarray) -> Moments:
    """Moments of second - first over patients where both are known."""
    difference = second - first
    return Moments.of(difference[~np.isnan(difference)])
