"""The arrays of a block of shards under simulation, shared by the kernel's modules.

`live` holds one entry per patient still in the arrays (see engine.model.v2.kernel); the
per-patient results are by position in the block; `rows` collects the visit sub-steps' rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.columns import NULL
from engine.model.parameters import RunParameters
from engine.model.shards import shard_bounds
from engine.model.v2.draws import RandomFactory, RandomSource
from engine.model.v2.patients import enrol
from engine.model.v2.recruitment import enrolment_days
from engine.model.v2.tables import TimeBasedTables

__all__ = ["NEVER", "NO_VISIT", "BlockState"]

NEVER = 2**40  # last injection day of a patient never injected: d < 0, effect row 0
NO_VISIT = 2**40  # next visit of a patient who will not be seen again


class BlockState:
    """Live arrays, per-patient results and recorded rows of a block of shards."""

    def __init__(
        self,
        tables: TimeBasedTables,
        params: RunParameters,
        shard_indices: Sequence[int],
        random_factory: RandomFactory,
    ) -> None:
        self.tables = tables
        self.params = params
        self.shard_indices = list(shard_indices)
        bounds = [shard_bounds(params, k) for k in self.shard_indices]
        self.first_id = bounds[0][0]
        self.shard_starts = np.cumsum([0] + [size for _, size in bounds])
        size = self.size = int(self.shard_starts[-1])
        self.factory = random_factory
        ids = np.arange(self.first_id, self.first_id + size, dtype=np.int64)
        self.source: RandomSource = random_factory(params.seed, ids)
        self.horizon = params.horizon_days
        self.cohort = params.recruitment.mode == "cohort"
        self.enrolment = enrolment_days(params, ids)
        self.enrolled = enrol(tables, self.source)
        # Per-patient results, by position in the block (days since enrolment; -1 none).
        self.death_t = np.full(size, NULL, dtype=np.int64)
        self.stop_t = np.full(size, NULL, dtype=np.int64)
        self.reason = np.full(size, NULL, dtype=np.int8)
        self.final_state = np.zeros(size, dtype=np.int8)
        self.final_va = np.zeros(size, dtype=np.float64)
        self.baseline_measured = np.zeros(size, dtype=np.int64)
        self.rows: list[tuple[np.ndarray, ...]] = []
        self.fortnights = 0
        e = self.enrolled
        loading = tables.loading_doses
        first_interval = tables.loading_interval if loading else int(tables.regimen_min[0])
        self.live: dict[str, np.ndarray] = {
            "pid": np.arange(size, dtype=np.intp),
            "limit": (self.horizon - self.enrolment).astype(np.int64),  # days of follow-up
            "state": np.zeros(size, dtype=np.intp),
            "va": e.baseline.copy(),
            "ceiling": e.ceiling,
            # Effect row offset: +1 (row 0 = never injected), + a group for non-responders.
            "group": np.where(e.responder, 1, 1 + tables.rows_per_group).astype(np.int64),
            "last_injection": np.full(size, NEVER, dtype=np.int64),
            # Injections so far <= the maximum, or the last one came after a long enough gap
            # (docs/model.md 3.3); changes only at injections.
            "may_improve": np.full(size, tables.improvement_max_injections >= 0, dtype=bool),
            "injections": np.zeros(size, dtype=np.int64),
            "phase": np.zeros(size, dtype=np.int64),  # improvement fortnights left
            "gain_factor": e.gain_factor,
            "age": e.age,
            "sex_row": e.sex.astype(np.intp) * tables.ages - tables.first_age,
            "death_p": np.zeros(size, dtype=np.float64),  # this fortnight's probability
            "birthday": np.zeros(size, dtype=np.int64),  # t from which to recompute it
            "alive": np.ones(size, dtype=bool),
            "treated": np.ones(size, dtype=bool),
            "next_visit": np.zeros(size, dtype=np.int64),
            "visit_no": np.zeros(size, dtype=np.int64),
            "interval": np.full(size, first_interval, dtype=np.int64),
            "baseline": np.zeros(size, dtype=np.int64),  # measured baseline
            "last_measured": np.zeros(size, dtype=np.int64),  # at the previous visit
            # Consecutive visits: below the poor-vision threshold, with a large loss,
            # seeing STABLE, not above the measured baseline (docs/model.md 4).
            "counters": np.zeros((size, 4), dtype=np.int64),
        }
        self.finished = 0  # patients in the arrays no longer alive

    def record(self, rows: tuple[np.ndarray, ...]) -> None:
        """Keep one visit sub-step's rows: pid, visit, t, measured VA, injected, state."""
        self.rows.append(rows)
