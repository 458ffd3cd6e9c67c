"""What a run's statistics are made of, computed per shard (or shard part) from its columns.

Two kinds, merged differently:

- `Counts`: integer arrays that add up exactly in any order. Histograms of small bounded
  integers (VA letters 0-100, so VA quantiles are exact; VA change -100..100; injections and
  visits per patient), categorical counts (final state, discontinuation reason), per month
  since enrollment (VA histogram, disease states) and per calendar month (visits,
  injections, patients active). Totals (patients, visits, injections, follow-up days).
  Format-2 runs add the outcome table's counts (`engine.stats.outcome_counts`).
- `Sketches`: t-digests and moments of continuous or unbounded quantities: injections per
  patient-year, days from enrollment to discontinuation, days between injections. These are
  merged in shard order (`engine.stats.tree`) so results never depend on arrival order.

Workers compute these while the writer, the run's bottleneck, only adds them up.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import msgspec
import numpy as np

from engine.columns import NULL, REASON_NAMES, Columns, format_of_patients
from engine.model.parameters import DAYS_PER_MONTH, DAYS_PER_YEAR
from engine.model.states import STATE_NAMES, VISIT_LAYOUT_REASON_NAMES
from engine.stats.moments import Moments
from engine.stats.outcome_counts import outcome_counts
from engine.stats.tdigest import DigestState, TDigest

__all__ = [
    "Counts",
    "CountsState",
    "ShardStats",
    "Sketch",
    "Sketches",
    "month_count",
    "shard_stats",
]

VA_VALUES = 101  # letters 0..100
SKETCH_NAMES = ("injections_per_year", "time_to_discontinuation_days", "days_between_injections")


def month_count(horizon_days: int) -> int:
    """Months (of 30.4375 days) needed to cover days 0 .. horizon_days - 1."""
    return math.floor((horizon_days - 1) / DAYS_PER_MONTH) + 1


class CountArray(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An int64 array as stored: shape and little-endian bytes."""

    shape: tuple[int, ...]
    data: bytes


class CountsState(msgspec.Struct, frozen=True, kw_only=True):
    """`Counts` as stored."""

    arrays: dict[str, CountArray]


class Counts:
    """Named int64 arrays that merge by addition (shorter ones are zero-padded)."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: dict[str, np.ndarray] | None = None) -> None:
        self.arrays = arrays or {}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def add(self, other: Counts) -> None:
        """Add `other` into this one, in place."""
        for name, theirs in other.arrays.items():
            mine = self.arrays.get(name)
            if mine is None:
                self.arrays[name] = theirs.astype(np.int64, copy=True)
            elif mine.shape == theirs.shape:
                self.arrays[name] = mine + theirs
            else:
                shape = tuple(max(a, b) for a, b in zip(mine.shape, theirs.shape, strict=True))
                self.arrays[name] = _padded(mine, shape) + _padded(theirs, shape)

    def state(self) -> CountsState:
        """Serialisable form."""
        return CountsState(
            arrays={
                name: CountArray(shape=values.shape, data=values.astype("<i8").tobytes())
                for name, values in sorted(self.arrays.items())
            }
        )

    @classmethod
    def from_state(cls, state: CountsState) -> Counts:
        """Rebuild from `state()`."""
        return cls(
            {
                name: np.frombuffer(array.data, dtype="<i8").reshape(array.shape).copy()
                for name, array in state.arrays.items()
            }
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts) or self.arrays.keys() != other.arrays.keys():
            return False
        return all(np.array_equal(v, other.arrays[k]) for k, v in self.arrays.items())

    __hash__ = None  # type: ignore[assignment]


class SketchState(msgspec.Struct, frozen=True, array_like=True):
    """A `Sketch` as stored."""

    digest: DigestState
    moments: Moments


class Sketch:
    """A t-digest and exact-as-possible moments of one quantity."""

    __slots__ = ("digest", "moments")

    def __init__(self, digest: TDigest, moments: Moments) -> None:
        self.digest = digest
        self.moments = moments

    @classmethod
    def of(cls, values: np.ndarray) -> Sketch:
        """Sketch of `values`, built from distinct values and their counts."""
        distinct, counts = np.unique(values, return_counts=True)
        return cls(TDigest.from_counts(distinct, counts), Moments.of_counts(distinct, counts))

    @classmethod
    def of_days(cls, days: np.ndarray) -> Sketch:
        """Sketch of non-negative whole numbers, counted without sorting."""
        counts = np.bincount(days)
        distinct = np.flatnonzero(counts)
        return cls(
            TDigest.from_counts(distinct, counts[distinct]),
            Moments.of_counts(distinct, counts[distinct]),
        )

    @classmethod
    def empty(cls) -> Sketch:
        """A sketch of nothing."""
        return cls(TDigest(), Moments())

    @classmethod
    def merge_in_order(cls, sketches: Sequence[Sketch]) -> Sketch:
        """Merge in the order given (callers fix the order); empty sketches are skipped and a
        single non-empty one is returned as it is, so merging never re-clusters needlessly."""
        present = [s for s in sketches if s.moments.count]
        if not present:
            return sketches[0]
        if len(present) == 1:
            return present[0]
        digest = present[0].digest.merge([s.digest for s in present[1:]])
        return cls(digest, Moments.merge_all(s.moments for s in present))

    def state(self) -> SketchState:
        """Serialisable form."""
        return SketchState(self.digest.state(), self.moments)

    @classmethod
    def from_state(cls, state: SketchState) -> Sketch:
        """Rebuild from `state()`."""
        return cls(TDigest.from_state(state.digest), state.moments)


class SketchesState(msgspec.Struct, frozen=True, kw_only=True):
    """`Sketches` as stored."""

    injections_per_year: SketchState
    time_to_discontinuation_days: SketchState
    days_between_injections: SketchState


class Sketches:
    """The three sketched quantities of a set of patients."""

    __slots__ = SKETCH_NAMES

    def __init__(self, **sketches: Sketch) -> None:
        for name in SKETCH_NAMES:
            setattr(self, name, sketches[name])

    @classmethod
    def empty(cls) -> Sketches:
        """Sketches of no patients (the later parts of a split shard carry these)."""
        return cls(**{name: Sketch.empty() for name in SKETCH_NAMES})

    @classmethod
    def merge_in_order(cls, parts: Sequence[Sketches]) -> Sketches:
        """Merge in the order given; `engine.stats.tree` supplies shard order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            **{n: Sketch.merge_in_order([getattr(p, n) for p in parts]) for n in SKETCH_NAMES}
        )

    def state(self) -> SketchesState:
        """Serialisable form."""
        return SketchesState(**{name: getattr(self, name).state() for name in SKETCH_NAMES})

    @classmethod
    def from_state(cls, state: SketchesState) -> Sketches:
        """Rebuild from `state()`."""
        return cls(**{name: Sketch.from_state(getattr(state, name)) for name in SKETCH_NAMES})


class ShardStatsState(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker sends with each batch: its patients' counts and sketches."""

    counts: CountsState
    sketches: SketchesState


class ShardStats:
    """Statistics of one shard part; see the module docstring."""

    __slots__ = ("counts", "sketches")

    def __init__(self, counts: Counts, sketches: Sketches) -> None:
        self.counts = counts
        self.sketches = sketches

    def state(self) -> ShardStatsState:
        """Serialisable form."""
        return ShardStatsState(counts=self.counts.state(), sketches=self.sketches.state())

    @classmethod
    def from_state(cls, state: ShardStatsState) -> ShardStats:
        """Rebuild from `state()`."""
        return cls(Counts.from_state(state.counts), Sketches.from_state(state.sketches))


def shard_stats(
    patients: Columns, visits: Columns, horizon_days: int, sketches: bool = True
) -> ShardStats:
    """Statistics of a shard's (or part's) patients, from its columns.

    A shard split into parts sends its sketches, computed on the whole shard, with the
    first part only (`sketches=False` for the others): sketches then do not depend on how
    a shard was split, while counts, exact, add up the same either way.
    """
    layout = format_of_patients(patients)
    months = month_count(horizon_days)
    month_of_day = _month_of_day(horizon_days)
    enrollment = patients["enrollment_day"]
    stopped = patients["discontinued"]
    end_day = np.where(stopped, patients["discontinuation_day"], horizon_days).astype(np.int64)
    follow_up = end_day - enrollment
    injections = patients["injections"]
    visit_counts = patients["visits"]
    reasons = patients["discontinuation_reason"]
    baseline = patients["baseline_vision"].astype(np.int64)
    final = patients["final_vision"].astype(np.int64)

    # Per visit: calendar month, and month since the patient's enrollment (the same when
    # everyone enrols on day 0).
    day = visits["day"]
    calendar = month_of_day[day]
    if enrollment.any():
        since = month_of_day[day - np.repeat(enrollment, visit_counts)]
    else:
        since = calendar
    injected = visits["injected"]

    # Patients active in a calendar month: from the month they enrol to the month of their
    # last day in follow-up (their discontinuation visit, or the horizon's last day).
    last_day = np.where(stopped, end_day, horizon_days - 1)
    active = np.bincount(month_of_day[enrollment], minlength=months + 1) - np.bincount(
        month_of_day[last_day] + 1, minlength=months + 1
    )

    counts = Counts(
        {
            "totals": np.array(
                [
                    len(enrollment),
                    int(visit_counts.sum()),
                    int(injections.sum()),
                    int(follow_up.sum()),
                ]
            ),
            "baseline_va": np.bincount(baseline, minlength=VA_VALUES),
            "final_va": np.bincount(final, minlength=VA_VALUES),
            "va_change": np.bincount(final - baseline + 100, minlength=2 * VA_VALUES - 1),
            "injections_per_patient": np.bincount(injections),
            "visits_per_patient": np.bincount(visit_counts),
            "final_state": np.bincount(patients["final_state"], minlength=len(STATE_NAMES)),
            "discontinuation_reason": np.bincount(
                reasons[reasons != NULL], minlength=_reason_count(layout, reasons)
            ),
            "va_by_month": _table(since, visits["vision"], months, VA_VALUES),
            "state_by_month": _table(since, visits["disease_state"], months, len(STATE_NAMES)),
            "calendar_visits": np.bincount(calendar, minlength=months),
            "calendar_injections": np.bincount(calendar, weights=injected, minlength=months).astype(
                np.int64
            ),
            "calendar_active": np.cumsum(active)[:months],
        }
    )
    if layout >= 2:  # the outcome table needs the time-based model's columns
        counts.add(Counts(outcome_counts(patients)))

    if not sketches:
        return ShardStats(counts, Sketches.empty())
    positive = follow_up > 0
    injected_rows = np.flatnonzero(injected)
    injected_patient = visits["patient_id"][injected_rows]
    injected_day = day[injected_rows]
    same_patient = injected_patient[1:] == injected_patient[:-1]
    gaps = (injected_day[1:] - injected_day[:-1])[same_patient]
    return ShardStats(
        counts,
        Sketches(
            # A patient who stopped on the day of enrolment (possible in the time-based
            # model) has no follow-up time and no rate.
            injections_per_year=Sketch.of(
                injections[positive] / (follow_up[positive] / DAYS_PER_YEAR)
            ),
            time_to_discontinuation_days=Sketch.of_days(follow_up[stopped]),
            days_between_injections=Sketch.of_days(gaps),
        ),
    )


@functools.cache
def _month_of_day(horizon_days: int) -> np.ndarray:
    """Month (of 30.4375 = 487/16 days) of each day 0 .. horizon_days: exact integer maths."""
    return (np.arange(horizon_days + 1, dtype=np.int64) * 16) // 487


def _table(rows: np.ndarray, columns: np.ndarray, row_count: int, column_count: int) -> np.ndarray:
    """Counts of (row, column) pairs as a row_count x column_count table."""
    flat = rows * column_count + columns
    return np.bincount(flat, minlength=row_count * column_count).reshape(row_count, column_count)


def _padded(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int64)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out


def _reason_count(layout: int, reasons: np.ndarray) -> int:
    """How many reasons the counts list: the format's, or for a format-1 run whose rule blocks
    recorded a reason beyond the older three, the current visit-based layout's full list (so
    that the length alone names the list, `engine.totals.reason_names`)."""
    names = REASON_NAMES[layout]
    if layout == 1 and reasons.size and int(reasons.max()) >= len(names):
        return len(VISIT_LAYOUT_REASON_NAMES)
    return len(names)
