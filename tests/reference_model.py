"""A per-patient, plain-Python implementation of the visit model (DESIGN section 4).

Written from the design text, independently of the vectorised kernel, and deliberately
naive: one patient at a time, one visit at a time, Python's `random`. It is the statistical
oracle the kernel is compared against, and the "one Python loop per patient-visit" baseline
that perf/bench_kernel.py measures the kernel's speed-up against. Cohort recruitment only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.model.parameters import DAYS_PER_MONTH
from engine.model.v1.protocol import Protocol

STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")
ACTIVE_STATES = {"ACTIVE", "HIGHLY_ACTIVE"}


@dataclass
class ReferencePatient:
    """Outcome of one simulated patient, plus their visits as (day, vision, injected, state)."""

    baseline_vision: int
    final_vision: int
    injections: int
    discontinued: bool
    reason: str | None
    visits: list[tuple[int, int, bool, str, int | None]]


def simulate_patient(protocol: Protocol, horizon_days: int, rng: random.Random) -> ReferencePatient:
    """One patient enrolled on day 0, followed until discontinuation or the horizon."""
    baseline = protocol.baseline_vision
    vision = _clip(round(rng.gauss(baseline.mean, baseline.std)), baseline.min, baseline.max)
    baseline_vision = int(vision)
    vision = _clip(vision + _vision_change(protocol, "NAIVE", True, rng), 0, 100)
    state, injected, injections, day, visit = "NAIVE", True, 1, 0, 0
    interval = _next_interval(protocol, visit, state, None)
    visits = [(day, int(vision), injected, state, interval)]
    discontinued, reason = False, None
    while day + interval < horizon_days:
        day += interval
        visit += 1
        state = _transition(protocol, state, injected, rng)
        injected = (
            visit < protocol.loading_doses
            or protocol.protocol_type == "fixed"
            or state in ACTIVE_STATES
        )
        injections += injected
        vision = _clip(vision + _vision_change(protocol, state, injected, rng), 0, 100)
        interval = _next_interval(protocol, visit, state, interval)
        reason = _discontinuation_reason(protocol, vision, injections, day)
        probability = _rule_probability(protocol, reason)
        discontinued = rng.random() < probability
        if discontinued:
            visits.append((day, int(vision), injected, state, None))
            break
        reason = None
        visits.append((day, int(vision), injected, state, interval))
    if not discontinued:
        last = visits[-1]
        visits[-1] = (*last[:4], None)
    return ReferencePatient(
        baseline_vision=baseline_vision,
        final_vision=int(vision),
        injections=injections,
        discontinued=discontinued,
        reason=reason,
        visits=visits,
    )


def _transition(protocol: Protocol, state: str, injected: bool, rng: random.Random) -> str:
    row = getattr(protocol.disease_transitions, state)
    weights = [getattr(row, target) for target in STATES]
    if injected:
        multipliers = getattr(protocol.treatment_effect_on_transitions, state).multipliers
        weights = [w * getattr(multipliers, t) for w, t in zip(weights, STATES, strict=True)]
    total = sum(weights)
    draw = rng.random() * total
    for target, weight in zip(STATES, weights, strict=True):
        if draw < weight:
            return target
        draw -= weight
    return next(t for t, w in zip(reversed(STATES), reversed(weights), strict=True) if w > 0)


def _vision_change(protocol: Protocol, state: str, injected: bool, rng: random.Random) -> int:
    scenario = getattr(
        protocol.vision_change_model, f"{state.lower()}_{'treated' if injected else 'untreated'}"
    )
    return round(rng.gauss(scenario.mean, scenario.std))


def _next_interval(protocol: Protocol, visit: int, state: str, previous: int | None) -> int:
    if visit < protocol.loading_doses - 1:
        return protocol.min_interval_days
    if protocol.protocol_type == "fixed":
        return protocol.max_interval_days
    if protocol.protocol_type == "prn" or previous is None:
        return protocol.min_interval_days
    if state in ("NAIVE", "STABLE"):
        proposed = previous + protocol.extension_days
    elif state == "HIGHLY_ACTIVE":
        proposed = previous - protocol.shortening_days
    else:
        proposed = previous
    return max(protocol.min_interval_days, min(protocol.max_interval_days, proposed))


def _discontinuation_reason(
    protocol: Protocol, vision: float, injections: int, day: int
) -> str | None:
    rules = protocol.discontinuation_rules
    if vision < rules.poor_vision_threshold:
        return "poor_vision"
    if injections > rules.high_injection_count:
        return "high_injections"
    if day / DAYS_PER_MONTH > rules.long_treatment_months:
        return "long_treatment"
    return None


def _rule_probability(protocol: Protocol, reason: str | None) -> float:
    rules = protocol.discontinuation_rules
    return {
        None: 0.0,
        "poor_vision": rules.poor_vision_probability,
        "high_injections": rules.high_injection_probability,
        "long_treatment": rules.long_treatment_probability,
    }[reason]


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
