"""The model's value of each target figure, with its Monte Carlo standard error.

Each protocol a target names is simulated once per call, for every patient of the cohort and
up to the last day any of its targets reads, with the same seed every call: the time-based
model draws its random numbers by (seed, patient, purpose, step) (DESIGN section 3), so two
candidate parameter sets see the same patients and the same chances (common random numbers),
and the fit compares parameters, not noise.

Definitions (docs/validation.md):
- ``injections``: injections per patient on days since enrolment in [from_day, to_day).
  LOCF view: every patient enrolled (the trials' full analysis set); observed: patients alive
  and under treatment at to_day (registries report those who completed the period); entered:
  alive and under treatment at from_day (a trial's patients who entered its second year).
- ``va_change`` at a day: measured VA at the last visit on or before the day minus the
  measured baseline, letters. LOCF: every patient, the dead and the discontinued carrying their
  last value; observed: patients alive and under treatment at the day.
- ``va_change_sd``: the standard deviation of that change across patients.
- ``gained_15``, ``lost_lt_15``, ``lost_15``: percent with change >= +15, > -15, <= -15.
- ``discontinued``: percent who stopped treatment (death included) before the day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.calibration.targets import Target
from engine.columns import NULL, ShardOutput
from engine.model.interface import compile_model
from engine.model.parameters import DAYS_PER_YEAR, RunParameters, validate_parameters
from engine.model.v2.schema import TimeBasedProtocol

__all__ = [
    "CohortFollowUp",
    "Estimate",
    "evaluate_targets",
    "figure_value",
    "horizon_days",
    "simulate_cohort",
]

SHARD_SIZE = 10_000
SHARDS_PER_CALL = 8  # simulate in blocks of this many shards: memory stays bounded
Progress = Callable[[str, int, int], None]  # (protocol label, protocols done, protocols)


@dataclass(frozen=True)
class Estimate:
    """A simulated figure, its Monte Carlo standard error and the patients it counts."""

    value: float
    se: float
    n: int


@dataclass(frozen=True)
class CohortFollowUp:
    """What the figures need of a simulated cohort, per patient and per visit.

    Visit arrays are in (patient, visit) order; `first_row[i]` is patient i's first visit row
    and `first_row[-1]` the number of rows. Days are days since the patient's enrolment; -1
    means never (no discontinuation, no death before the horizon).
    """

    baseline: np.ndarray  # measured VA at enrolment, letters
    stop_day: np.ndarray  # day treatment stopped (death included), -1 if never
    death_day: np.ndarray  # -1 if alive at the horizon
    first_row: np.ndarray
    patient: np.ndarray  # per visit: index of the patient in this cohort
    day: np.ndarray
    vision: np.ndarray
    injected: np.ndarray

    @property
    def patients(self) -> int:
        """Patients in the cohort."""
        return len(self.baseline)

    def under_treatment(self, day: int) -> np.ndarray:
        """Per patient: alive and still under treatment on `day`."""
        stopped = (self.stop_day >= 0) & (self.stop_day <= day)
        dead = (self.death_day >= 0) & (self.death_day <= day)
        return ~(stopped | dead)

    def va_change_at(self, day: int) -> np.ndarray:
        """Per patient: measured VA at the last visit on or before `day`, minus baseline."""
        seen = np.bincount(self.patient[self.day <= day], minlength=self.patients)
        row = self.first_row[:-1] + np.maximum(seen, 1) - 1
        return self.vision[row].astype(np.float64) - self.baseline

    def injections_between(self, from_day: int, to_day: int) -> np.ndarray:
        """Per patient: injections on days in [from_day, to_day)."""
        chosen = self.injected & (self.day >= from_day) & (self.day < to_day)
        return np.bincount(self.patient[chosen], minlength=self.patients).astype(np.float64)


def horizon_days(targets: Sequence[Target]) -> int:
    """Days of follow-up the targets read: one past the last day any of them looks at."""
    last = 0
    for target in targets:
        if target.figure == "injections":
            last = max(last, int(target.to_day or 0))
        else:
            last = max(last, int(target.day or 0) + 1)
    return max(last, 1)


def simulate_cohort(
    protocol: TimeBasedProtocol, patients: int, seed: int, days: int
) -> CohortFollowUp:
    """Simulate `patients` enrolled on day 0 for `days` days under `protocol`."""
    years = days / DAYS_PER_YEAR
    params = RunParameters(n_patients=patients, years=years, seed=seed, shard_size=SHARD_SIZE)
    while params.horizon_days < days:  # rounding: never read past the horizon
        years += 0.5 / DAYS_PER_YEAR
        params = RunParameters(n_patients=patients, years=years, seed=seed, shard_size=SHARD_SIZE)
    params = validate_parameters(params)
    model = compile_model(protocol)
    shards = list(range(params.shard_count))
    outputs: list[ShardOutput] = []
    for start in range(0, len(shards), SHARDS_PER_CALL):
        outputs.extend(model.simulate_shards(params, shards[start : start + SHARDS_PER_CALL]))
    return _follow_up(outputs)


def _follow_up(outputs: Sequence[ShardOutput]) -> CohortFollowUp:
    """Concatenate shard outputs into per-patient and per-visit arrays, days from enrolment."""

    def column(table: str, name: str) -> np.ndarray:
        return np.concatenate([getattr(output, table)[name] for output in outputs])

    ids = column("patients", "patient_id").astype(np.int64)
    enrolment = column("patients", "enrollment_day").astype(np.int64)
    first_id = int(ids[0]) if len(ids) else 0

    def since_enrolment(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.int64)
        return np.where(values == NULL, -1, values - enrolment)

    patient = column("visits", "patient_id").astype(np.int64) - first_id
    counts = np.bincount(patient, minlength=len(ids))
    first_row = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=first_row[1:])
    return CohortFollowUp(
        baseline=column("patients", "baseline_vision").astype(np.float64),
        stop_day=since_enrolment(column("patients", "discontinuation_day")),
        death_day=since_enrolment(column("patients", "death_day")),
        first_row=first_row,
        patient=patient,
        day=column("visits", "day").astype(np.int64) - enrolment[patient],
        vision=column("visits", "vision").astype(np.int64),
        injected=column("visits", "injected").astype(bool),
    )


def figure_value(cohort: CohortFollowUp, target: Target) -> Estimate:
    """The model's value of `target`'s figure in `cohort`, with its standard error."""
    if target.figure == "injections":
        assert target.from_day is not None and target.to_day is not None
        values = cohort.injections_between(target.from_day, target.to_day)
        if target.view == "observed":
            values = values[cohort.under_treatment(target.to_day - 1)]
        elif target.view == "entered":
            values = values[cohort.under_treatment(target.from_day)]
        return _mean(values)
    day = int(target.day or 0)
    if target.figure == "discontinued":
        stopped = (cohort.stop_day >= 0) & (cohort.stop_day < day)
        return _share(stopped)
    change = cohort.va_change_at(day)
    if target.view == "observed":
        change = change[cohort.under_treatment(day)]
    if target.figure == "va_change":
        return _mean(change)
    if target.figure == "va_change_sd":
        n = len(change)
        sd = float(np.std(change, ddof=1)) if n > 1 else math.nan
        return Estimate(sd, sd / math.sqrt(2 * (n - 1)) if n > 1 else math.nan, n)
    if target.figure == "gained_15":
        return _share(change >= 15)
    if target.figure == "lost_lt_15":
        return _share(change > -15)
    if target.figure == "lost_15":
        return _share(change <= -15)
    raise ValueError(f"unknown figure {target.figure!r}")  # the schema allows no other


def evaluate_targets(
    targets: Sequence[Target],
    protocols: Mapping[str, TimeBasedProtocol],
    patients: int,
    seed: int,
    progress: Progress | None = None,
) -> list[Estimate]:
    """Each target's simulated value, in order; one simulation per protocol named.

    `protocols` maps each target's `protocol` string to the (possibly modified) protocol.
    """
    by_protocol: dict[str, list[int]] = {}
    for index, target in enumerate(targets):
        by_protocol.setdefault(target.protocol, []).append(index)
    estimates: list[Estimate | None] = [None] * len(targets)
    for done, (name, indices) in enumerate(by_protocol.items()):
        chosen = [targets[i] for i in indices]
        cohort = simulate_cohort(protocols[name], patients, seed, horizon_days(chosen))
        for i in indices:
            estimates[i] = figure_value(cohort, targets[i])
        if progress is not None:
            progress(name, done + 1, len(by_protocol))
    return [estimate for estimate in estimates if estimate is not None]


def _mean(values: np.ndarray) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    sd = float(np.std(values, ddof=1)) if n > 1 else math.nan
    return Estimate(float(np.mean(values)), sd / math.sqrt(n) if n > 1 else math.nan, n)


def _share(flags: np.ndarray) -> Estimate:
    n = len(flags)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    p = float(np.mean(flags))
    return Estimate(100.0 * p, 100.0 * math.sqrt(p * (1.0 - p) / n), n)
