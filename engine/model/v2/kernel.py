"""Simulate shards of the time-based model: one numpy pass per fortnight over live patients.

Every live patient of a block of shards advances one fortnight per step (docs/model.md 1):
death, disease transition with the decaying effect of the last injection, vision; then the
visits that fall inside the fortnight, in visit sub-steps (a patient seen every 7 days has two
visits in one fortnight). Discontinued patients stay in the arrays, untreated and unvisited,
until death or the horizon. Dead patients are dropped from the arrays only every so often
(compaction rebuilds the random source for the remaining ids): between compactions they are
carried along, masked out of deaths and visits, their final values already saved.

Every number comes from the random source (common random numbers keyed on patient id, step
and purpose), so rows do not depend on shard size, grouping or compaction timing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from engine.columns import ShardOutput
from engine.model.parameters import DAYS_PER_YEAR, RunParameters
from engine.model.v2.block_state import NO_VISIT, BlockState
from engine.model.v2.draws import RandomFactory, crn_source
from engine.model.v2.random_numbers import Purpose
from engine.model.v2.shard_output import block_outputs
from engine.model.v2.tables import TimeBasedTables
from engine.model.v2.vision_time import VisionTimeTracker
from engine.model.v2.visits import visit

__all__ = ["simulate_shards"]

_DEATH = 0
_ACTIVE = 2  # DiseaseState.ACTIVE
# Drop finished patients from the arrays once they are this share of them.
_COMPACT_SHARE = 0.125


def simulate_shards(
    tables: TimeBasedTables,
    params: RunParameters,
    shard_indices: Sequence[int],
    random_factory: RandomFactory = crn_source,
) -> list[ShardOutput]:
    """Simulate consecutive shards together; one `ShardOutput` per shard, in order."""
    return simulate_block(tables, params, shard_indices, random_factory)[0]


def simulate_block(
    tables: TimeBasedTables,
    params: RunParameters,
    shard_indices: Sequence[int],
    random_factory: RandomFactory = crn_source,
    vision_time: VisionTimeTracker | None = None,
) -> tuple[list[ShardOutput], int]:
    """`simulate_shards`, plus the number of patient-fortnights simulated (for benchmarks).

    With `vision_time`, the tracker is filled with every patient's years in each VA band
    (engine.model.v2.vision_time), by position in the block.
    """
    if any(b - a != 1 for a, b in itertools.pairwise(shard_indices)):
        raise ValueError(f"shards simulated together must be consecutive, got {shard_indices}")
    block = Block(tables, params, shard_indices, random_factory)
    if vision_time is not None:
        vision_time.start(block.size)
        block.vision_time = vision_time
    block.run()
    if vision_time is not None:
        limit = block.horizon - block.enrolment.astype(np.int64)
        vision_time.finish(np.where(block.death_t >= 0, block.death_t, limit))
    return block.outputs(), block.fortnights


class Block(BlockState):
    """A block of shards being simulated: the fortnight loop over its `BlockState`."""

    vision_time: VisionTimeTracker | None = None

    def run(self) -> None:
        """Fortnight 0 (the enrolment visits), then one step per fortnight to the end."""
        k = 0
        while True:
            if k > 0 and not self._update(k):
                return
            if self.vision_time is not None:
                live = self.live
                alive = np.flatnonzero(live["alive"])
                self.vision_time.add_fortnight(k, live["pid"][alive], live["va"][alive])
            bound = 14 * (k + 1)
            while True:
                due = np.flatnonzero(self.live["next_visit"] < bound)
                if len(due) == 0:
                    break
                visit(self, due)
            k += 1

    def _finish(self, rows: np.ndarray) -> None:
        """Save the final values of the patients at `rows` and take them out of play."""
        live = self.live
        pid = live["pid"][rows]
        self.final_state[pid] = live["state"][rows]
        self.final_va[pid] = live["va"][rows]
        live["alive"][rows] = False
        live["next_visit"][rows] = NO_VISIT
        live["death_p"][rows] = 0.0  # a uniform is never below 0: no second death
        live["birthday"][rows] = NO_VISIT
        self.finished += len(rows)

    def _update(self, k: int) -> bool:
        """Update k (docs/model.md 3) for every live patient; False when none is left."""
        t = 14 * k
        live, tables = self.live, self.tables
        if self.cohort:
            if t >= self.horizon:
                self._finish(np.flatnonzero(live["alive"]))
                return False
        else:
            leaving = np.flatnonzero(live["alive"] & (live["limit"] <= t))
            if len(leaving):
                self._finish(leaving)
        if self.finished > _COMPACT_SHARE * len(live["pid"]):
            self._compact()
            if len(live["pid"]) == 0:
                return False
        live = self.live
        alive_count = len(live["pid"]) - self.finished
        if alive_count == 0:
            return False
        self.fortnights += alive_count
        source = self.source

        # 3.1 Death. The probability changes only when a patient's whole age does: it is
        # recomputed (exactly) for the patients whose next birthday may have come.
        birthday = live["birthday"]
        due = np.flatnonzero(birthday <= t)
        if len(due):
            age = np.floor(live["age"][due] + t / DAYS_PER_YEAR)
            row = np.clip(age, tables.first_age, tables.first_age + tables.ages - 1).astype(np.intp)
            row += live["sex_row"][due]
            live["death_p"][due] = tables.death_probability[row]
            # A day early, so that rounding can only make the recomputation come sooner.
            birthday[due] = np.floor((age + 1.0 - live["age"][due]) * DAYS_PER_YEAR) - 1
        died = source.uniform(k, Purpose.DEATH) < live["death_p"]
        if died.any():
            dead = np.flatnonzero(died)
            pid = live["pid"][dead]
            self.death_t[pid] = t
            under = dead[live["treated"][dead]]
            self.stop_t[live["pid"][under]] = t
            self.reason[live["pid"][under]] = _DEATH
            live["treated"][dead] = False
            self._finish(dead)

        # 3.2 Transition with the effect of the last injection (d days ago).
        effect_row = t - live["last_injection"]
        np.clip(effect_row, -1, tables.max_day, out=effect_row)
        effect_row += live["group"]
        effect_row *= 4
        code = effect_row + live["state"]
        u = source.uniform(k, Purpose.TRANSITION)
        if tables.naive_unreachable:  # no row moves into NAIVE: the first threshold is 0
            state = (u >= np.take(tables.transition_t1, code)).astype(np.intp)
            state += 1
        else:
            state = (u >= np.take(tables.transition_t0, code)).astype(np.intp)
            state += u >= np.take(tables.transition_t1, code)
        state += u >= np.take(tables.transition_t2, code)
        live["state"] = state
        np.add(effect_row, state, out=code)

        # 3.3 Vision: gradual change, improvement phases, haemorrhage, ceiling.
        change = source.normal(k, Purpose.VISION_CHANGE)
        change *= np.take(tables.gradual_std, code)
        change += np.take(tables.gradual_mean, code)
        phase = live["phase"]
        starting = np.take(tables.improvement_eligible, code)
        starting &= live["may_improve"]
        starting &= phase == 0
        candidates = np.flatnonzero(starting)
        if len(candidates):
            u = source.uniform(k, Purpose.IMPROVEMENT_START, candidates)
            starts = candidates[u < tables.improvement_probability[state[candidates]]]
            phase[starts] = tables.improvement_fortnights
        in_phase = np.flatnonzero(phase > 0)
        if len(in_phase):
            s = state[in_phase]
            gain = source.normal(k, Purpose.IMPROVEMENT_RATE, in_phase)
            gain *= tables.improvement_std[s]
            gain += tables.improvement_mean[s]
            np.maximum(gain, 0.0, out=gain)
            if tables.gain_sigma:
                gain *= live["gain_factor"][in_phase]
            change[in_phase] = gain
            phase[in_phase] -= 1
        at_risk = np.flatnonzero(state >= _ACTIVE)  # the only states with a risk
        if len(at_risk):
            u = source.uniform(k, Purpose.HAEMORRHAGE, at_risk)
            hit = at_risk[u < np.take(tables.haemorrhage_risk, np.take(code, at_risk))]
            if len(hit):
                u = source.uniform(k, Purpose.HAEMORRHAGE_LOSS, hit)
                span = tables.haemorrhage_loss_max - tables.haemorrhage_loss_min
                change[hit] -= tables.haemorrhage_loss_min + u * span
        va = live["va"]
        va += change
        np.minimum(va, live["ceiling"], out=va)
        np.maximum(va, 0.0, out=va)
        return True

    def _compact(self) -> None:
        """Drop finished patients; the random source is rebuilt for the remaining ids."""
        keep = np.flatnonzero(self.live["alive"])
        self.live = {name: values[keep] for name, values in self.live.items()}
        ids = self.live["pid"].astype(np.int64) + self.first_id
        self.source = self.factory(self.params.seed, ids)
        self.finished = 0

    def outputs(self) -> list[ShardOutput]:
        """One output per shard, rows in (patient_id, visit) order."""
        return block_outputs(self)
