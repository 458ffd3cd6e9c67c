"""One visit sub-step of the time-based kernel (docs/model.md 4 and 5).

The patients at `rows` each have their next visit inside the current fortnight; they may be
at different visit numbers, so visit draws use per-row steps (``10**6 + visit number``). In
order: measured VA, discontinuation counters and checks (not at the enrolment visit),
treatment decision and next interval per regimen, then the recorded row.
"""

from __future__ import annotations

import numpy as np

from engine.model.states import DiseaseState
from engine.model.v2.block_state import NEVER, NO_VISIT, BlockState
from engine.model.v2.draws import VISIT_STEP, RandomSource
from engine.model.v2.random_numbers import Purpose
from engine.model.v2.tables import REGIMEN_TYPES, TimeBasedTables

__all__ = ["visit"]

_STABLE, _ACTIVE = DiseaseState.STABLE, DiseaseState.ACTIVE
# Reason codes (engine.model.states.V2_REASON_NAMES).
_POOR, _LOSS, _STABLE_REASON, _FLAT, _ATTRITION, _ADMIN = 1, 2, 3, 4, 5, 6
_YEAR_DAYS = 365.25
_MONTH_DAYS = 30.4375


def visit(block: BlockState, rows: np.ndarray) -> None:
    """Visit the live patients at `rows` (positions in the live arrays) once each."""
    live, tables, source = block.live, block.tables, block.source
    t = live["next_visit"][rows]
    n = live["visit_no"][rows]
    steps = n + VISIT_STEP
    state = live["state"][rows]
    noise = source.normal_at(steps, Purpose.MEASUREMENT_NOISE, rows)
    measured = live["va"][rows] + tables.noise_std * noise
    np.rint(measured, out=measured)
    np.clip(measured, 0.0, 100.0, out=measured)
    measured = measured.astype(np.int64)
    first = n == 0
    if first.any():
        live["baseline"][rows[first]] = measured[first]
        block.baseline_measured[live["pid"][rows[first]]] = measured[first]
    baseline = live["baseline"][rows]
    injections = live["injections"][rows]

    reason = _discontinue(
        tables, source, live, rows, t, n, steps, state, measured, baseline, injections
    )
    stopped = reason >= 0
    inject = np.zeros(len(rows), dtype=bool)
    going = np.flatnonzero(~stopped)
    if len(going):
        inject[going] = _treat(
            tables, live, rows[going], t[going], n[going], state[going], measured[going]
        )
    live["last_measured"][rows] = measured

    # Injection history, next visit and the row.
    shot = rows[inject]
    if len(shot):
        t_shot = t[inject]
        last = live["last_injection"][shot]
        count = live["injections"][shot] + 1
        live["injections"][shot] = count
        # The first injection follows no other: counted as a long enough gap.
        gap_ok = (last == NEVER) | (t_shot - last >= tables.improvement_gap_days)
        live["may_improve"][shot] = (count <= tables.improvement_max_injections) | gap_ok
        live["last_injection"][shot] = t_shot
    live["visit_no"][rows] = n + 1
    next_visit = t + live["interval"][rows]
    next_visit[next_visit >= live["limit"][rows]] = NO_VISIT
    next_visit[stopped] = NO_VISIT
    live["next_visit"][rows] = next_visit
    if stopped.any():
        gone = rows[stopped]
        live["treated"][gone] = False
        pid = live["pid"][gone]
        block.stop_t[pid] = t[stopped]
        block.reason[pid] = reason[stopped]
    block.record((live["pid"][rows], n, t, measured, inject, state))


def _discontinue(
    tables: TimeBasedTables,
    source: RandomSource,
    live: dict[str, np.ndarray],
    rows: np.ndarray,
    t: np.ndarray,
    n: np.ndarray,
    steps: np.ndarray,
    state: np.ndarray,
    measured: np.ndarray,
    baseline: np.ndarray,
    injections: np.ndarray,
) -> np.ndarray:
    """Update the counters, then check the categories in priority order; reason or -1.

    The enrolment visit updates the counters (it is a visit with a measurement) but is
    never checked.
    """
    holds = np.empty((len(rows), 4), dtype=bool)
    np.less(measured, _threshold(tables, "poor_vision", 0), out=holds[:, 0])
    np.less_equal(measured - baseline, _threshold(tables, "deterioration", 0), out=holds[:, 1])
    np.equal(state, _STABLE, out=holds[:, 2])
    np.less_equal(measured, baseline, out=holds[:, 3])
    counts = np.take(live["counters"], rows, axis=0)  # faster than 2-d fancy indexing
    counts += 1
    counts *= holds
    live["counters"][rows] = counts
    poor, loss, stable, flat = counts.T
    reason = np.full(len(rows), -1, dtype=np.int8)
    open_ = n > 0  # never at the enrolment visit
    if not open_.any():
        return reason

    # (who qualifies, probability, purpose, reason) in priority order.
    checks: list[tuple[np.ndarray, np.ndarray | float, Purpose, int]] = []
    for name, values in tables.discontinuation:
        if name == "poor_vision":
            _, grace, p = values
            checks.append((poor > grace, p, Purpose.DISCONTINUE_POOR_VISION, _POOR))
        elif name == "deterioration":
            _, visits, p = values
            checks.append((loss >= visits, p, Purpose.DISCONTINUE_DETERIORATION, _LOSS))
        elif name == "treatment_decision":
            minimum, stable_visits, p_stable, flat_visits, p_flat = values
            decide = injections >= minimum
            checks.append((decide & (stable >= stable_visits), p_stable,
                           Purpose.DISCONTINUE_STABLE, _STABLE_REASON))  # fmt: skip
            checks.append((decide & (flat >= flat_visits), p_flat,
                           Purpose.DISCONTINUE_NO_IMPROVEMENT, _FLAT))  # fmt: skip
        elif name == "attrition":
            base, m12, m24, m_late, b6, b12, b_high = values
            # Months < 12, < 24, else (t / 30.4375 < 12 is t < 365.25); the same for burden.
            time = np.array([m12, m24, m_late])[
                (t >= 12 * _MONTH_DAYS).astype(np.intp) + (t >= 24 * _MONTH_DAYS)
            ]
            rate = injections / np.maximum(1.0, t / _YEAR_DAYS)
            burden = np.array([b6, b12, b_high])[(rate >= 6).astype(np.intp) + (rate >= 12)]
            p = np.minimum(1.0, base * time * burden)
            checks.append((p > 0, p, Purpose.DISCONTINUE_ATTRITION, _ATTRITION))
        elif values[0] > 0:
            checks.append((open_, values[0], Purpose.DISCONTINUE_ADMINISTRATIVE, _ADMIN))
    # A check draws only if someone qualifies (the set open to checks only shrinks); the
    # draws of all of them come from one call, for every row: a row's number is the same
    # whoever else is drawn for, so exactly the same patients stop as check by check.
    checks = [check for check in checks if (check[0] & open_).any()]
    if not checks:
        return reason
    u = source.uniforms_at(steps, [check[2] for check in checks], rows)
    for (qualifies, p, _, code), draws in zip(checks, u, strict=True):
        fired = draws < p
        fired &= qualifies
        fired &= open_
        reason[fired] = code
        open_ &= ~fired
    return reason


def _threshold(tables: TimeBasedTables, name: str, index: int) -> float:
    """A category's first number (its VA threshold); a category left out never counts."""
    for category, values in tables.discontinuation:
        if category == name:
            return values[index]
    return -np.inf


def _treat(
    tables: TimeBasedTables,
    live: dict[str, np.ndarray],
    rows: np.ndarray,
    t: np.ndarray,
    n: np.ndarray,
    state: np.ndarray,
    measured: np.ndarray,
) -> np.ndarray:
    """Whether each patient is injected; sets `live["interval"]` to the next gap (section 5).

    Where docs/model.md is silent: `injection_rule: when_active` applies to the fixed types
    as to treat-and-extend; a PRN patient never injected yet has reached any cap.
    """
    inject = np.empty(len(rows), dtype=bool)
    interval = live["interval"][rows]
    if len(tables.regimen_type) == 1:
        regimen = np.zeros(len(rows), dtype=np.intp)
    else:
        regimen = np.searchsorted(tables.regimen_start, t, side="right") - 1
    active_only = state != _STABLE if tables.when_active else np.ones(len(rows), dtype=bool)
    for r, kind in enumerate(tables.regimen_type):
        here = np.flatnonzero(regimen == r)
        if len(here) == 0:
            continue
        s = state[here]
        lo, hi = int(tables.regimen_min[r]), int(tables.regimen_max[r])
        if REGIMEN_TYPES[kind] == "treat_and_extend":
            inject[here] = active_only[here]
            # Change of interval by state (NAIVE, STABLE, ACTIVE); HIGHLY_ACTIVE resets to lo.
            change = np.array([0, tables.regimen_extension[r], -tables.regimen_shortening[r],
                               -(2**40)], dtype=np.int64)  # fmt: skip
            loss = int(tables.regimen_vision_loss[r])
            if loss > 0:  # a loss since the previous visit shortens as an active visit does
                previous = live["last_measured"][rows[here]]
                s = np.where((s < _ACTIVE) & (previous - measured[here] >= loss), _ACTIVE, s)
            gap = interval[here] + np.take(change, s)
            np.clip(gap, lo, hi, out=gap)
            interval[here] = gap
        elif REGIMEN_TYPES[kind] == "fixed":
            inject[here] = active_only[here]
            interval[here] = hi
        else:  # prn
            due = s >= _ACTIVE
            cap = int(tables.regimen_cap[r])
            if cap >= 0:
                last = live["last_injection"][rows[here]]
                due |= (last == NEVER) | (t[here] - last >= cap)
            inject[here] = due
            interval[here] = lo
    loading = tables.loading_doses
    if loading:
        inject[n < loading] = True
        interval[n < loading - 1] = tables.loading_interval
    live["interval"][rows] = interval
    return inject
