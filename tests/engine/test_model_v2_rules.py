"""The time-based kernel's visit rules agree with docs/model.md (issue 11): improvement
phases, discontinuation categories and their priority, and the schedule of every protocol type.

The kernel's visits are replayed through the independent reference (tests/reference_model_v2.py):
what is deterministic given the states seen (intervals, injections, loading, phase lengths,
when a rule may fire) is checked exactly; what is random is compared with the reference's
probabilities at ALPHA = 1e-5 per test (Bonferroni within a test); see
test_model_v2_statistics.py for the family-wise budget.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.engine.model_v2_support import (
    ALPHA,
    DISCONTINUATION,
    assert_z,
    constant_rows,
    make_protocol,
    run_kernel,
)
from tests.reference_model_v2 import (
    REASONS,
    STABLE,
    Discontinuation,
    Regimen,
    ceiling,
    death_probability,
    improvement_eligible,
    vision_effect,
)

SEED = 20261203
P = "parameters"
V = "parameters.vision"


def _by_patient(visits):
    """Row ranges [start, stop) of each patient's visits (rows sorted by patient, visit)."""
    pid = visits["patient_id"]
    cuts = np.flatnonzero(np.diff(pid)) + 1
    starts = np.concatenate([[0], cuts])
    stops = np.concatenate([cuts, [len(pid)]])
    return [(int(pid[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


# --- improvement phases -----------------------------------------------------------------------
def _improvement_protocol(changes):
    base = {
        "baseline_vision_distribution": {"type": "normal", "mean": 50.0, "std": 0.0},
        f"{P}.disease_transitions.fortnightly_transitions": constant_rows("STABLE"),
        f"{V}.vision_decline_fortnightly.STABLE": {
            "untreated": {"mean": -1.0, "std": 0.0},
            "treated": {"mean": -1.0, "std": 0.0},
        },
        f"{V}.vision_improvement.improvement_rate.STABLE": {"mean": 1.0, "std": 0.0},
        f"{V}.vision_improvement.improvement_probability.STABLE": 0.2,
    }
    base.update(changes)
    return make_protocol(base)


@pytest.mark.parametrize(
    "case",
    [
        # every 14 days, always eligible by count; phases of 3 fortnights
        {"protocol_type": "fixed", "min_interval_days": 14, "max_interval_days": 14,
         f"{V}.vision_improvement.max_treatments_for_improvement": 1000,
         f"{V}.vision_improvement.max_improvement_duration_fortnights": 3},
        # PRN with a 98-day cap: eligible by count (<= 1 injection) then by the 98-day gap
        {"loading_dose_injections": 1, "max_days_between_injections": 98,
         f"{V}.vision_improvement.max_treatments_for_improvement": 1,
         f"{V}.vision_improvement.max_improvement_duration_fortnights": 1},
        # PRN with a 70-day cap: the gap rule never holds, only the first injection's count
        {"loading_dose_injections": 1, "max_days_between_injections": 70,
         f"{V}.vision_improvement.max_treatments_for_improvement": 1,
         f"{V}.vision_improvement.max_improvement_duration_fortnights": 2},
    ],
    ids=["count", "gap-met", "gap-not-met"],
)  # fmt: skip
def test_improvement_start_and_length(case):
    """Without noise each fortnight's change is exactly +1 (in a phase) or -1 (not), seen
    between visits 14 days apart. Replaying the injection history through the reference's
    eligibility (not NAIVE, v > 0.5, injections <= max or last gap >= 84 days; non-responders'
    v = 0.3 never qualifies) checks exactly that phases start only when eligible and last
    `max_improvement_duration_fortnights` (or run to the horizon); the number of starts among
    eligible fortnights outside a phase is binomial(0.2): z at alpha 1e-5 over >= 50k
    fortnights, which detects a start probability of 0.19 vs 0.2 (z > 5.5) with prob > 0.9."""
    protocol = _improvement_protocol(case)
    patients, visits = run_kernel(protocol, 8_000, 365, SEED)
    length = protocol.parameters.vision.vision_improvement.max_improvement_duration_fortnights
    days, vision, injected = visits["day"], visits["vision"], visits["injected"]
    starts = eligible = 0
    for pid, a, b in _by_patient(visits):
        responder = bool(patients["responder"][pid])
        injections: list[int] = []
        left = 0
        for row in range(a, b - 1):
            assert days[row + 1] - days[row] == 14, "visits every 14 days"
            if injected[row]:
                injections.append(int(days[row]))
            t = int(days[row + 1])
            step = int(vision[row + 1]) - int(vision[row])
            assert step in (1, -1), f"patient {pid} day {t}: change {step}"
            if left > 0:
                assert step == 1, f"patient {pid}: phase shorter than {length} at day {t}"
                left -= 1
                continue
            v = vision_effect(
                protocol.parameters, t - injections[-1] if injections else None, responder
            )
            gap = injections[-1] - injections[-2] if len(injections) > 1 else None
            if improvement_eligible(protocol.parameters, STABLE, v, len(injections), gap):
                eligible += 1
                if step == 1:
                    starts += 1
                    left = length - 1
            else:
                assert step == -1, f"patient {pid}: phase started at day {t} while not eligible"
    assert eligible > 20_000
    assert_z(starts, 0.2 * eligible, 0.16 * eligible, "improvement starts")


def test_ceiling_caps_true_vision_by_baseline():
    """True VA never exceeds min(factor x baseline, absolute ceiling by baseline threshold):
    improvement phases every fortnight gaining 10 letters push everyone to the ceiling within
    a year. Without noise the measured baseline is the rounded true one, so the ceiling is
    known to within its value at baseline +/- 0.5; patients within 1 letter of a threshold
    are skipped. Exact (false-failure rate 0)."""
    protocol = _improvement_protocol(
        {
            "baseline_vision_distribution": {"type": "uniform", "min": 30.0, "max": 90.0},
            "protocol_type": "fixed",
            "min_interval_days": 14,
            "max_interval_days": 14,
            f"{V}.vision_improvement.improvement_probability.STABLE": 1.0,
            f"{V}.vision_improvement.improvement_rate.STABLE": {"mean": 10.0, "std": 0.0},
            f"{V}.vision_improvement.max_treatments_for_improvement": 1000,
            f"{P}.treatment_effect.treatment_response.responder_probability": 1.0,
            f"{V}.vision_ceilings": {
                "baseline_ceiling_factor": 1.2,
                "absolute_ceiling_default": 80,
                "absolute_ceiling_high_baseline": 95,
                "absolute_ceiling_low_baseline": 60,
                "high_baseline_threshold": 80,
                "low_baseline_threshold": 50,
            },
        }
    )
    patients, _ = run_kernel(protocol, 5_000, 365, SEED + 3)
    vision = protocol.parameters.vision
    checked = 0
    for b, final in zip(patients["baseline_vision"], patients["final_vision"], strict=True):
        if min(abs(b - 50), abs(b - 80)) < 1:
            continue
        lo, hi = ceiling(vision, b - 0.5), ceiling(vision, b + 0.5)
        assert round(lo) <= final <= round(hi), f"baseline {b}: final {final}, ceiling {lo}-{hi}"
        checked += 1
    assert checked > 4_000


# --- discontinuation --------------------------------------------------------------------------
PRIORITIES = {
    "origin": {1: "death", 2: "poor_vision", 3: "deterioration", 4: "treatment_decision",
               5: "attrition", 6: "administrative"},
    "reversed": {1: "administrative", 2: "attrition", 3: "treatment_decision",
                 4: "deterioration", 5: "poor_vision", 6: "death"},
}  # fmt: skip


@pytest.mark.parametrize("order", sorted(PRIORITIES))
def test_discontinuation_categories_and_priority(order):
    """Every visit after the enrolment one is replayed through the reference's counters
    (updated at every visit, the enrolment visit included) and conditions: a patient may stop
    only where some category's condition holds, with a reason among those, at their last
    visit, without an injection (exact). For each of the six reasons the number of stops is
    the sum over visits of p_r x prod(1 - p) over the categories before it in priority order;
    one z per reason (alpha 1e-5/6 each), 12k patients x 2 years (>= 200 expected per reason).
    Power: a condition off by one visit or the priority order ignored moves a reason's count
    by > 20 % (z > 6)."""
    protocol = make_protocol(
        {
            "baseline_vision_distribution": {"type": "normal", "mean": 55.0, "std": 12.0,
                                             "min": 5.0, "max": 95.0},
            f"{V}.vision_measurement.measurement_noise_std": 3.0,
            f"{V}.vision_decline_fortnightly.ACTIVE.untreated": {"mean": -1.5, "std": 1.0},
            f"{V}.vision_decline_fortnightly.HIGHLY_ACTIVE.untreated": {"mean": -3.0, "std": 1.5},
            "min_interval_days": 28,
            "max_interval_days": 28,
            f"{P}.discontinuation.discontinuation_parameters": DISCONTINUATION,
            f"{P}.discontinuation.discontinuation_priority": PRIORITIES[order],
        }
    )  # fmt: skip
    patients, visits = run_kernel(protocol, 12_000, 730, SEED + 1)
    expected = dict.fromkeys(REASONS[1:], 0.0)
    variance = dict.fromkeys(REASONS[1:], 0.0)
    observed = dict.fromkeys(REASONS[1:], 0)
    day, vision, state, injected = (
        visits[k] for k in ("day", "vision", "disease_state", "injected")
    )
    for pid, a, b in _by_patient(visits):
        counters = Discontinuation(protocol.parameters)
        baseline = int(patients["baseline_vision"][pid])
        stop_day = int(patients["discontinuation_day"][pid])
        reason = int(patients["discontinuation_reason"][pid])
        stopped_at_visit = stop_day >= 0 and reason > 0
        injections = 0
        for row in range(a, b):
            t = int(day[row])
            counters.update(int(vision[row]), baseline, int(state[row]))
            if row > a:
                survive = 1.0
                for name, prob in counters.candidates(t, injections):
                    q = survive * prob
                    expected[name] += q
                    variance[name] += q * (1 - q)
                    survive *= 1 - prob
                if stopped_at_visit and t == stop_day:
                    names = [n for n, _ in counters.candidates(t, injections)]
                    assert REASONS[reason] in names, (
                        f"patient {pid} day {t}: {REASONS[reason]} not in {names}"
                    )
                    assert row == b - 1 and not injected[row], (
                        f"patient {pid}: visits after stopping"
                    )
                    observed[REASONS[reason]] += 1
            injections += int(injected[row])
        if stopped_at_visit:
            assert stop_day in day[a:b], f"patient {pid}: stopped on a day without a visit"
    for name in expected:
        assert expected[name] > 200, f"{name}: too few expected ({expected[name]:.0f})"
        assert_z(observed[name], expected[name], variance[name], f"{name} ({order})", ALPHA / 6)


# --- schedules --------------------------------------------------------------------------------
SCHEDULES = {
    "t&e": {"protocol_type": "treat_and_extend", "loading_dose_injections": 3,
            "min_interval_days": 28, "max_interval_days": 112, "extension_days": 14,
            "shortening_days": 14},
    "t&e-when-active": {"protocol_type": "treat_and_extend", "loading_dose_injections": 3,
                        "injection_rule": "when_active", "min_interval_days": 28,
                        "max_interval_days": 84, "extension_days": 28, "shortening_days": 14},
    "t&e-no-loading": {"protocol_type": "treat_and_extend", "min_interval_days": 42,
                       "max_interval_days": 98, "extension_days": 14, "shortening_days": 7},
    "fixed": {"protocol_type": "fixed", "loading_dose_injections": 3, "min_interval_days": 56,
              "max_interval_days": 56},
    "treat_and_treat": {"protocol_type": "treat_and_treat", "loading_dose_injections": 3,
                        "loading_dose_interval_days": 35, "min_interval_days": 56,
                        "max_interval_days": 56},
    "fixed_interval": {"protocol_type": "fixed_interval", "min_interval_days": 28,
                       "max_interval_days": 84},
    "prn": {"protocol_type": "prn", "loading_dose_injections": 3, "min_interval_days": 28,
            "max_interval_days": 28},
    "prn-capped": {"protocol_type": "prn", "loading_dose_injections": 1, "min_interval_days": 21,
                   "max_interval_days": 21, "max_days_between_injections": 84},
    "phases": {"protocol_type": "treat_and_extend", "loading_dose_injections": 3,
               "min_interval_days": 28, "max_interval_days": 112, "extension_days": 14,
               "shortening_days": 14,
               "phases": [{"start_day": 364, "protocol_type": "prn", "min_interval_days": 35,
                           "max_interval_days": 35},
                          {"start_day": 728, "protocol_type": "fixed", "min_interval_days": 49,
                           "max_interval_days": 49}]},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_and_injections_exact(name):
    """Loading, injections and intervals follow section 5 exactly, given the states seen:
    each visit's `injected`, the gap to the next visit and `interval_days` (null at the last)
    are replayed through the reference's Regimen; the last visit is followed by nothing
    because the next one would fall at or after the horizon or after death. Deterministic,
    so no tolerance (false-failure rate 0). 3,000 patients x 3 years with mortality on."""
    changes = {f"{P}.mortality.mortality_rates": {"male": _table(0.02), "female": _table(0.02)}}
    changes.update(SCHEDULES[name])
    protocol = make_protocol(changes)
    horizon = 1096
    patients, visits = run_kernel(protocol, 3_000, horizon, SEED + 2)
    day, state, injected, interval = (
        visits[k] for k in ("day", "disease_state", "injected", "interval_days")
    )
    for pid, a, b in _by_patient(visits):
        regimen, last_injection = Regimen(protocol), None
        assert day[a] == 0, f"patient {pid}: first visit on day {day[a]}"
        for row in range(a, b):
            t = int(day[row])
            since = None if last_injection is None else t - last_injection
            inject, gap = regimen.decide(t, int(state[row]), since)
            label = f"{name} patient {pid} visit {row - a} day {t}"
            assert bool(injected[row]) == inject, f"{label}: injected {injected[row]}"
            if inject:
                last_injection = t
            if row < b - 1:
                assert day[row + 1] - t == gap, (
                    f"{label}: next visit after {day[row + 1] - t}, not {gap}"
                )
                assert interval[row] == gap, f"{label}: interval_days {interval[row]}, not {gap}"
            else:
                assert interval[row] == -1, f"{label}: interval_days {interval[row]} at the last"
                death = int(patients["death_day"][pid])
                assert t + gap >= horizon or 0 <= death <= t + gap, f"{label}: visits stop early"


def _table(q: float) -> dict[int, float]:
    return {a: q for a in range(50, 101)}


def test_reference_rules_use_the_spec_numbers():
    """The reference's curves at the page's own example values (a guard on the reference)."""
    protocol = make_protocol()
    values = {
        d: vision_effect(protocol.parameters, d, True) for d in (56, 70, 84, 98, 112, 168, 224, 300)
    }
    assert values == {
        56: 1.0,
        70: 0.75,
        84: 0.5,
        98: 0.375,
        112: 0.25,
        168: 0.125,
        224: 0.0,
        300: 0.0,
    }
    assert vision_effect(protocol.parameters, 14, False) == pytest.approx(0.3)
    assert vision_effect(protocol.parameters, None, True) == 0.0
    tabled = make_protocol(
        {f"{P}.mortality.mortality_rates": {"male": _table(0.1), "female": _table(0.1)}}
    )
    rate = math.log(1 / 0.9) * 1.36 * 14 / 365.25
    assert death_probability(tabled.parameters, "male", 60.5, "real_world") == pytest.approx(
        1 - math.exp(-rate)
    )
    # survival bias 0.9 in 80-89: the excess hazard (HR - 1) shrinks by 10 %
    bias = 1 + (0.9 - 1) * 0.36 / 1.36
    assert death_probability(tabled.parameters, "female", 85.2, "real_world") == pytest.approx(
        1 - math.exp(-rate * bias)
    )
