"""Simulate shards: every step advances all live patients of a block of shards by one visit.

There is no Python loop over patients or days; the loop is over visit numbers, and each
iteration is a fixed sequence of numpy passes over the patients still in follow-up. Patients
leave the live arrays when they discontinue or their next visit would fall on or after the
horizon. Rows are produced visit-major and scattered once, at the end, into
(patient_id, visit) order. The model is DESIGN section 4; `engine.model.v1.tables` explains the codes.

Several consecutive shards can be simulated together to amortise numpy's per-call cost over
more patients. Each shard still draws only from its own stream, the same numbers in the same
order whatever it is grouped with, so outputs do not depend on the grouping. Per shard, in
order: enrollment gaps (unless the cohort enrols on day 0), baseline vision (one normal, or one
uniform for the uniform and beta distributions), the enrollment visit's vision change; then per
step: transition uniforms, vision-change normals and, when a discontinuation probability (flat
rule or rule block) is positive, discontinuation uniforms. Rule blocks of the current layout
(`engine.model.v1.rule_blocks`) keep per-patient counters only when one can fire.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.columns import NULL, Columns, ShardOutput
from engine.model.parameters import RunParameters
from engine.model.recruitment import enrollment_days
from engine.model.shards import shard_bounds, shard_generator
from engine.model.states import DiseaseState
from engine.model.v1.baseline import Baseline, draw_baseline
from engine.model.v1.rule_blocks import BlockTracker
from engine.model.v1.tables import ModelTables

__all__ = ["simulate_shard", "simulate_shards"]

_TREATED = 4
_ENROLLMENT_CODE = DiseaseState.NAIVE + _TREATED


def simulate_shard(tables: ModelTables, params: RunParameters, shard_index: int) -> ShardOutput:
    """Simulate every patient of shard `shard_index` to discontinuation or the horizon."""
    return simulate_shards(tables, params, [shard_index])[0]


def simulate_shards(
    tables: ModelTables, params: RunParameters, shard_indices: Sequence[int]
) -> list[ShardOutput]:
    """Simulate consecutive shards together; one `ShardOutput` per shard, in order."""
    if any(b - a != 1 for a, b in itertools.pairwise(shard_indices)):
        raise ValueError(f"shards simulated together must be consecutive, got {shard_indices}")
    block = _Block(tables, params, shard_indices)
    block.run_steps()
    return block.outputs()


class _Block:
    """The live state of a block of shards and the rows recorded so far."""

    def __init__(
        self, tables: ModelTables, params: RunParameters, shard_indices: Sequence[int]
    ) -> None:
        self.tables = tables
        self.params = params
        self.shard_indices = list(shard_indices)
        bounds = [shard_bounds(params, k) for k in self.shard_indices]
        self.first_id = bounds[0][0]
        self.shard_starts = np.cumsum([0] + [size for _, size in bounds])
        self.size = int(self.shard_starts[-1])
        self.cohort = params.recruitment.mode == "cohort"
        self.streams = [shard_generator(params.seed, k) for k in self.shard_indices]
        self.baseline_distribution = tables.baseline or Baseline(
            "normal",
            tables.baseline_mean,
            tables.baseline_std,
            tables.baseline_min,
            tables.baseline_max,
        )
        enrolled = [
            self._enroll(k, rng) for k, rng in zip(self.shard_indices, self.streams, strict=True)
        ]
        self.enrollment = np.concatenate([e[0] for e in enrolled])
        self.baseline = np.concatenate([e[1] for e in enrolled])
        self.first_change = np.concatenate([e[2] for e in enrolled])
        self.reason = np.full(self.size, NULL, dtype=np.int8)
        # Rows, one chunk per step, and where each shard's rows start in each chunk.
        self.rows_patient: list[np.ndarray] = []
        self.rows_day: list[np.ndarray] = []
        self.rows_vision: list[np.ndarray] = []
        self.rows_code: list[np.ndarray] = []
        self.rows_cuts: list[list[int]] = []

    def _enroll(self, shard_index: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Enrollment days, baseline vision and first vision change of one shard."""
        tables = self.tables
        enrollment = enrollment_days(self.params, shard_index, rng)
        size = len(enrollment)
        baseline = draw_baseline(self.baseline_distribution, rng, size)
        change = rng.standard_normal(size, dtype=np.float32)
        change *= tables.vision_std[_ENROLLMENT_CODE]
        change += tables.vision_mean[_ENROLLMENT_CODE]
        np.rint(change, out=change)
        return enrollment, baseline, change

    def _cuts(self, patient: np.ndarray) -> list[int]:
        """Where each shard's patients start in the (sorted) live arrays, plus the end."""
        if len(self.streams) == 1:
            return [0, len(patient)]
        return np.searchsorted(patient, self.shard_starts).tolist()

    def _draw(self, cuts: list[int], with_stops: bool) -> tuple[np.ndarray, ...]:
        """This step's transition uniforms, vision normals and stop uniforms, shard by shard."""
        n = cuts[-1]
        u = np.empty(n, dtype=np.float32)
        z = np.empty(n, dtype=np.float32)
        r = np.empty(n, dtype=np.float32) if with_stops else u
        for rng, start, stop in zip(self.streams, cuts, cuts[1:], strict=False):
            if start == stop:
                continue
            rng.random(dtype=np.float32, out=u[start:stop])
            rng.standard_normal(dtype=np.float32, out=z[start:stop])
            if with_stops:
                rng.random(dtype=np.float32, out=r[start:stop])
        return u, z, r

    def run_steps(self) -> None:
        """The visit loop."""
        tables = self.tables
        horizon = self.params.horizon_days
        thresholds = tables.transition_thresholds
        state_floor = tables.transition_state_floor
        vision_mean, vision_std = tables.vision_mean, tables.vision_std
        treat_by_rule = tables.protocol_type != "fixed"
        with_stops = tables.can_discontinue

        # Enrollment visit: state NAIVE, always injected, naive_treated vision change.
        patient = np.arange(self.size, dtype=np.int32)
        code = np.full(self.size, _ENROLLMENT_CODE, dtype=np.intp)
        vision = self.baseline + self.first_change
        _clip_letters(vision)
        injections = np.ones(self.size, dtype=np.int32)
        day = self.enrollment.copy()
        # With everyone enrolled on day 0 the long-treatment test needs no per-patient array.
        long_after = None if self.cohort else self.enrollment + np.int32(tables.long_treatment_days)
        interval = np.empty(self.size, dtype=np.int32)
        _set_next_interval(tables, 0, interval, code)
        ended = (day + interval) >= horizon
        self._record(self._cuts(patient), patient, day, vision, code)
        # Counters of the current layout's rule blocks, only when one can fire.
        tracker = None
        if with_stops and tables.rule_blocks:
            tracker = BlockTracker(tables.rule_blocks, self.enrollment, vision)

        visit = 0
        while True:
            if ended.any():
                keep = np.flatnonzero(~ended)
                if len(keep) == 0:
                    return
                patient, code, vision, injections, interval, day = (
                    a[keep] for a in (patient, code, vision, injections, interval, day)
                )
                if long_after is not None:
                    long_after = long_after[keep]
                if tracker is not None:
                    tracker.keep(keep)
            visit += 1
            day += interval
            cuts = self._cuts(patient)
            u, change, stop_draw = self._draw(cuts, with_stops)

            # 1. Disease transition from the current state; the row depends on the last injection.
            if thresholds:
                if len(thresholds) == 1:
                    state = (u >= thresholds[0][code]).astype(np.intp)
                else:
                    state = np.add(
                        u >= thresholds[0][code], u >= thresholds[1][code], dtype=np.intp
                    )
                for threshold in thresholds[2:]:
                    state += u >= threshold[code]
                if state_floor:
                    state += state_floor
            else:
                state = np.full(len(patient), state_floor, dtype=np.intp)

            # 2. Treatment decision, folded into the new code (state + 4 * injected).
            if visit < tables.loading_doses or not treat_by_rule:
                code = state + _TREATED
            else:
                code = tables.treated_code_by_state[state]
            injections += code >= _TREATED

            # 3. Vision change of the (new state, treated) scenario, rounded, clipped to 0..100.
            change *= vision_std[code]
            change += vision_mean[code]
            np.rint(change, out=change)
            vision += change
            _clip_letters(vision)

            # 4. Next interval.
            gap = interval.copy() if tracker is not None else interval
            _set_next_interval(tables, visit, interval, state)
            ended = (day + interval) >= horizon

            # 5. Discontinuation.
            if tracker is not None:
                rule = tracker.applicable(
                    state, vision, self.baseline[patient], day, gap, interval, visit
                )
                self._stop_by_block(patient, rule, stop_draw, ended)
            elif with_stops:
                self._discontinue(patient, vision, injections, day, long_after, stop_draw, ended)
            self._record(cuts, patient, day, vision, code)

    def _discontinue(
        self,
        patient: np.ndarray,
        vision: np.ndarray,
        injections: np.ndarray,
        day: np.ndarray,
        long_after: np.ndarray | None,
        stop_draw: np.ndarray,
        ended: np.ndarray,
    ) -> None:
        """Apply the rules (the first whose condition holds decides); marks stops in `ended`.

        A patient can only stop if its uniform is below the largest rule probability, so the
        conditions are evaluated for those few patients only.
        """
        tables = self.tables
        candidate = np.flatnonzero(stop_draw < tables.max_rule_probability)
        if len(candidate) == 0:
            return
        poor = vision[candidate] < tables.poor_vision_threshold
        high = injections[candidate] > tables.high_injection_count
        limit = tables.long_treatment_days if long_after is None else long_after[candidate]
        long = day[candidate] > limit
        reason = np.where(poor, 0, np.where(high, 1, np.where(long, 2, NULL))).astype(np.int8)
        probability = tables.rule_probability_by_reason[reason]
        stopped = stop_draw[candidate] < probability
        if stopped.any():
            leaving = candidate[stopped]
            self.reason[patient[leaving]] = reason[stopped]
            ended[leaving] = True

    def _stop_by_block(
        self, patient: np.ndarray, rule: np.ndarray, stop_draw: np.ndarray, ended: np.ndarray
    ) -> None:
        """Stop where the applicable rule block's probability exceeds the stop uniform."""
        rules = self.tables.rule_blocks
        probability = np.array([r.probability for r in rules] + [0.0], dtype=np.float32)
        reasons = np.array([r.reason for r in rules] + [NULL], dtype=np.int8)
        stopped = np.flatnonzero(stop_draw < probability[rule])
        if len(stopped):
            self.reason[patient[stopped]] = reasons[rule[stopped]]
            ended[stopped] = True

    def _record(
        self,
        cuts: list[int],
        patient: np.ndarray,
        day: np.ndarray,
        vision: np.ndarray,
        code: np.ndarray,
    ) -> None:
        # `patient` is replaced, never modified in place, so it is kept without a copy.
        # Intervals are not recorded: each is the next visit's day minus this one's.
        self.rows_cuts.append(cuts)
        self.rows_patient.append(patient)
        self.rows_day.append(day.copy())
        self.rows_vision.append(vision.astype(np.int16))
        self.rows_code.append(code.astype(np.int8))

    def outputs(self) -> list[ShardOutput]:
        """One output per shard, each turned into patient-major order on its own.

        Working shard by shard keeps every array shard-sized, so the scatters stay in cache.
        """
        return [self._shard_output(b) for b in range(len(self.shard_indices))]

    def _shard_output(self, b: int) -> ShardOutput:
        lo, hi = int(self.shard_starts[b]), int(self.shard_starts[b + 1])
        size = hi - lo
        spans = [
            (step, cuts[b], cuts[b + 1])
            for step, cuts in enumerate(self.rows_cuts)
            if cuts[b] < cuts[b + 1]
        ]

        def gather(chunks: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([chunks[step][start:stop] for step, start, stop in spans])

        patient = gather(self.rows_patient) - np.int32(lo)
        counts = np.bincount(patient, minlength=size).astype(np.int32)
        starts = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        total = int(starts[-1])
        step_of_row = np.repeat(
            np.array([step for step, _, _ in spans], dtype=np.int64),
            [stop - start for _, start, stop in spans],
        )
        position = starts[patient]
        position += step_of_row

        def scatter(chunks: list[np.ndarray]) -> np.ndarray:
            values = gather(chunks)
            out = np.empty_like(values)
            out[position] = values
            return out

        last_row = starts[1:] - 1
        code = scatter(self.rows_code)
        day = scatter(self.rows_day)
        interval = np.empty(total, dtype=np.int16)
        np.subtract(day[1:], day[:-1], out=interval[:-1], casting="unsafe")
        interval[last_row] = NULL
        first_id = self.first_id + lo
        visits: Columns = {
            "patient_id": np.repeat(np.arange(first_id, first_id + size, dtype=np.int32), counts),
            "visit": _visit_numbers(starts, counts, total),
            "day": day,
            "vision": scatter(self.rows_vision),
            "injected": code >= _TREATED,
            "disease_state": code & 3,
            "interval_days": interval,
        }
        reason = self.reason[lo:hi].copy()
        discontinued = reason != NULL
        patients: Columns = {
            "patient_id": np.arange(first_id, first_id + size, dtype=np.int32),
            "enrollment_day": self.enrollment[lo:hi].copy(),
            "baseline_vision": self.baseline[lo:hi].astype(np.int16),
            "final_vision": visits["vision"][last_row],
            "final_state": visits["disease_state"][last_row],
            "injections": np.add.reduceat(visits["injected"], starts[:-1], dtype=np.int32),
            "visits": counts,
            "discontinued": discontinued,
            "discontinuation_day": np.where(discontinued, visits["day"][last_row], NULL).astype(
                np.int32
            ),
            "discontinuation_reason": reason,
        }
        return ShardOutput(shard_index=self.shard_indices[b], patients=patients, visits=visits)


def _set_next_interval(
    tables: ModelTables, visit: int, interval: npt.NDArray[np.int32], state: np.ndarray
) -> None:
    """Days to the next visit after visit number `visit`, in place."""
    if visit < tables.loading_doses - 1:
        interval.fill(tables.loading_interval_days or tables.min_interval_days)
    elif tables.protocol_type == "fixed":
        interval.fill(tables.max_interval_days)
    elif tables.protocol_type == "prn" or visit == 0:
        interval.fill(tables.min_interval_days)
    else:
        interval += tables.interval_step_by_state[state]
        np.maximum(interval, tables.min_interval_days, out=interval)
        np.minimum(interval, tables.max_interval_days, out=interval)


def _clip_letters(vision: np.ndarray) -> None:
    np.maximum(vision, 0.0, out=vision)
    np.minimum(vision, 100.0, out=vision)


def _visit_numbers(starts: np.ndarray, counts: np.ndarray, total: int) -> npt.NDArray[np.int16]:
    """Visit number of each patient-major row: row index minus the patient's first row.

    (`np.repeat` is several times faster than a restarting `np.cumsum` here.)
    """
    first_row = np.repeat(starts[:-1].astype(np.int32), counts)
    return (np.arange(total, dtype=np.int32) - first_row).astype(np.int16)
