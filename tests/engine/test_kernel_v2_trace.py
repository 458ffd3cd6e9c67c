"""Hand-traced patients of the time-based kernel: every draw chosen, every value worked out here.

The kernel draws from a fake source (tests/engine/v2_fake_random.py); the expected values
come from docs/model.md's formulas, written out below as plain scalar Python, plus literal
checks (states, visit days) so that a mistake shared by the formulas here and the kernel
would still show. Running the same patients with the horizon just after update k reads the
true VA and state after every update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.model.parameters import RunParameters
from engine.model.states import DiseaseState
from engine.model.v2.kernel import Block
from engine.model.v2.random_numbers import Purpose
from engine.model.v2.tables import compile_time_based

from .timebased_protocols import SIMPLE_FILES, simple_protocol
from .v2_fake_random import factory, visit_step

STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")
NAIVE, STABLE, ACTIVE, HIGHLY = range(4)
P = SIMPLE_FILES["disease_transitions"]["fortnightly_transitions"]
M = SIMPLE_FILES["treatment_effect"]["treatment_multipliers"]
DECLINE = SIMPLE_FILES["vision"]["vision_decline_fortnightly"]
U = Purpose

# Patient 0: female, 72.5, true baseline 65, responder; a treat-and-extend course, an
# improvement phase, a haemorrhage, an administrative discontinuation at visit 4 (day 70),
# then untreated follow-up. Patient 1: male, 76, dies at update 3. Patient 2: baseline 85,
# an improvement that hits the ceiling.
DEATH_P1 = None  # filled below from the formula (needs the helpers)
CHOSEN: dict[tuple[int, int, Purpose], float] = {
    (0, 0, U.AGE_BAND): 0.25,
    (0, 0, U.AGE_WITHIN_BAND): 0.5,
    (0, 0, U.SEX): 0.3,
    (0, 0, U.BASELINE_VISION): 0.5,
    (0, 0, U.RESPONDER): 0.1,
    (0, visit_step(0), U.MEASUREMENT_NOISE): 0.3,
    (0, 1, U.IMPROVEMENT_START): 0.3,
    (0, 1, U.IMPROVEMENT_RATE): 1.0,
    (0, 2, U.TRANSITION): 0.3,
    (0, 2, U.IMPROVEMENT_RATE): -5.0,
    (0, visit_step(3), U.MEASUREMENT_NOISE): -2.0,
    (0, 3, U.TRANSITION): 0.96,
    (0, 3, U.VISION_CHANGE): 1.0,
    (0, 3, U.HAEMORRHAGE): 0.0005,
    (0, 3, U.HAEMORRHAGE_LOSS): 0.5,
    (0, visit_step(4), U.DISCONTINUE_ADMINISTRATIVE): 0.001,
    (1, 0, U.AGE_BAND): 0.75,
    (1, 0, U.AGE_WITHIN_BAND): 0.2,
    (1, 0, U.SEX): 0.9,
    (1, 0, U.RESPONDER): 0.1,
    (2, 0, U.BASELINE_VISION): 2.5,
    (2, 0, U.RESPONDER): 0.1,
    (2, 1, U.IMPROVEMENT_START): 0.0,
    (2, 1, U.IMPROVEMENT_RATE): 40.0,
}


# --- docs/model.md formulas, scalar ----------------------------------------------------------
def transition_effect(d: int | None) -> float:
    """e(d), section 3.2 (full 28 days, half-life 28, floor 0.1); no injection: 0."""
    if d is None:
        return 0.0
    return 1.0 if d <= 28 else max(0.1, 0.5 ** ((d - 28) / 28))


def vision_effect(d: int | None) -> float:
    """v(d), section 3.3 (56, 84, 112; 1, 0.5, 0.25; then down 0.25 per 112 days)."""
    if d is None:
        return 0.0
    if d <= 56:
        return 1.0
    if d <= 84:
        return 1.0 - 0.5 * (d - 56) / 28
    if d <= 112:
        return 0.5 - 0.25 * (d - 84) / 28
    return max(0.0, 0.25 - 0.25 * (d - 112) / 112)


def next_state(s: int, d: int | None, u: float) -> int:
    """First j with u < cumulative P'[s][j]."""
    e = transition_effect(d)
    mult = M.get(STATES[s], {}).get("multipliers", {})
    w = [P[STATES[s]][j] * (1 + e * (mult.get(j, 1.0) - 1)) for j in STATES]
    cumulative = 0.0
    for j, weight in enumerate(w):
        cumulative += weight / sum(w)
        if u < cumulative:
            return j
    return 3


def gradual_mean(s: int, d: int | None) -> float:
    v = vision_effect(d)
    block = DECLINE[STATES[s]]
    return block["untreated"]["mean"] + v * (block["treated"]["mean"] - block["untreated"]["mean"])


def death_probability(sex: str, age: float) -> float:
    """Section 3.1 with the test's life table (70-80) and survival bias 0.9 at 75-79."""
    a = min(max(math.floor(age), 70), 80)
    q = SIMPLE_FILES["mortality"]["mortality_rates"][sex][a]
    hr = 1.36
    survival = 1 + (0.9 - 1) * (hr - 1) / hr if 75 <= a < 80 else 1.0
    rate = -math.log(1 - q) * hr * survival
    return 1 - math.exp(-rate * 14 / 365.25)


P1_AGE = 75 + 0.2 * 5
CHOSEN[(1, 2, U.DEATH)] = death_probability("male", P1_AGE + 28 / 365.25) * 1.001
CHOSEN[(1, 3, U.DEATH)] = death_probability("male", P1_AGE + 42 / 365.25) * 0.999


def patient0_trace() -> list[tuple[int, float]]:
    """(state, true VA) after updates 1..7 of patient 0, worked out step by step."""
    out = []
    # Visits 0 and 1 (days 0, 7) inject (loading). Update 1, day 14: d = 7.
    s = next_state(NAIVE, 7, 0.5)
    assert s == ACTIVE
    # Improvement phase starts (ACTIVE, v = 1 > 0.5, 2 injections <= 5, U 0.3 < 0.4).
    va = 65.0 + max(0.0, 0.8 + 0.3 * 1.0)
    out.append((s, va))
    # Visit 2 (day 14) injects; T&E interval max(21, 7 - 14) = 21 -> visit 3 on day 35.
    # Update 2, day 28: d = 14; still in the phase (2 fortnights), STABLE's rate, floored at 0.
    s = next_state(s, 14, 0.3)
    assert s == STABLE
    va += max(0.0, 0.5 + 0.2 * -5.0)
    out.append((s, va))
    # Visit 3 (day 35) injects; interval 21 + 14 = 35 -> visit 4 on day 70.
    # Update 3, day 42: d = 7; gradual change with Z = 1, haemorrhage 10 + 0.5 * 20 letters.
    s = next_state(s, 7, 0.96)
    assert s == ACTIVE
    va += gradual_mean(s, 7) + 0.3 * 1.0 - (10 + 0.5 * 20)
    out.append((s, va))
    for k, d in ((4, 21), (5, 35), (6, 49), (7, 63)):  # last injection day 35
        s = next_state(s, d, 0.5)
        va = min(max(va + gradual_mean(s, d), 0.0), 71.5)
        out.append((s, va))
        assert k == len(out)
    return out


def run(horizon: int, patients: int = 3) -> Block:
    tables = compile_time_based(simple_protocol())
    params = RunParameters(n_patients=patients, years=horizon / 365.25, seed=7)
    assert params.horizon_days == horizon
    block = Block(tables, params, [0], factory(CHOSEN))
    block.run()
    return block


@pytest.mark.parametrize("k", range(1, 8))
def test_true_va_and_state_after_each_update(k: int) -> None:
    block = run(14 * k + 1)
    state, va = patient0_trace()[k - 1]
    assert block.final_state[0] == state
    assert block.final_va[0] == pytest.approx(va, abs=1e-12)


def test_visits_discontinuation_and_untreated_follow_up() -> None:
    trace = patient0_trace()
    out = run(14 * 7 + 1).outputs()[0]
    p, v = out.patients, out.visits
    mine = v["patient_id"] == 0
    assert v["day"][mine].tolist() == [0, 7, 14, 35, 70]
    assert v["interval_days"][mine].tolist() == [7, 7, 21, 35, -1]
    assert v["injected"][mine].tolist() == [True, True, True, True, False]
    # Measured VA: round(true VA + 2.5 Z), half to even.
    expected = [round(65 + 2.5 * 0.3), 65, round(trace[0][1]), round(trace[1][1] - 5.0)]
    expected.append(round(trace[4][1]))
    assert v["vision"][mine].tolist() == expected == [66, 65, 66, 61, expected[-1]]
    assert v["disease_state"][mine].tolist() == [0, 0, ACTIVE, STABLE, trace[4][0]]
    assert p["baseline_vision"][0] == 66
    assert p["discontinuation_reason"][0] == 6  # administrative
    assert p["discontinuation_day"][0] == 70 and p["treated_days"][0] == 70
    assert p["injections"][0] == 4 and p["visits"][0] == 5
    assert p["alive_days"][0] == 99 and p["death_day"][0] == -1
    # Untreated follow-up went on to the horizon: the VA after update 7.
    assert p["final_vision"][0] == round(trace[6][1])
    assert p["age"][0] == pytest.approx(72.5) and p["sex"][0] == 0 and p["responder"][0]
    assert p["va_m3"][0] == expected[-1]  # day 91.3: the last measurement, day 70
    assert not p["treated_m3"][0]


def test_death_at_the_drawn_fortnight() -> None:
    out = run(14 * 7 + 1).outputs()[0]
    p, v = out.patients, out.visits
    assert p["sex"][1] == 1 and p["age"][1] == pytest.approx(P1_AGE)
    assert p["death_day"][1] == 42 and p["alive_days"][1] == 42
    assert p["discontinued"][1] and p["discontinuation_reason"][1] == 0
    assert p["discontinuation_day"][1] == 42 and p["treated_days"][1] == 42
    assert v["day"][v["patient_id"] == 1].tolist() == [0, 7, 14, 35]
    # The state at the last update before death (update 2): NAIVE -> ACTIVE -> ACTIVE.
    assert p["final_state"][1] == next_state(next_state(NAIVE, 7, 0.5), 14, 0.5) == ACTIVE


def test_improvement_stops_at_the_ceiling() -> None:
    block = run(15)
    assert block.enrolled.baseline[2] == 85.0
    assert block.enrolled.ceiling[2] == pytest.approx(min(1.1 * 85, 95))
    assert block.final_va[2] == pytest.approx(93.5)
    assert block.final_state[2] == DiseaseState.ACTIVE


def test_draws_chosen_here_are_the_ones_used() -> None:
    """Sanity of the fake: without the chosen haemorrhage the VA is 20 letters higher."""
    saved = CHOSEN.pop((0, 3, U.HAEMORRHAGE))
    try:
        block = run(14 * 3 + 1)
    finally:
        CHOSEN[(0, 3, U.HAEMORRHAGE)] = saved
    assert block.final_va[0] == pytest.approx(patient0_trace()[2][1] + 20.0)
    assert np.isfinite(block.final_va).all()


def test_poor_vision_fires_after_the_grace_visits() -> None:
    """True VA 15 < 20 from enrolment: counts 1, 2, 3 at visits 0, 1, 2 (the enrolment visit
    counts; it is never checked). The category can fire once the count exceeds the grace of 2,
    i.e. from visit 2, and only when its own uniform is below 0.8."""
    protocol = simple_protocol(
        baseline_vision_distribution__mean=15.0, baseline_vision_distribution__std=0.0,
        baseline_vision_distribution__min=0.0,
    )  # fmt: skip
    tables = compile_time_based(protocol)
    params = RunParameters(n_patients=2, years=1.0, seed=7)
    chosen = {(i, visit_step(n), U.DISCONTINUE_POOR_VISION): 0.001 for i in (0, 1) for n in (1, 3)}
    chosen[(0, visit_step(2), U.DISCONTINUE_POOR_VISION)] = 0.79  # fires (< 0.8)
    chosen[(1, visit_step(2), U.DISCONTINUE_POOR_VISION)] = 0.81  # does not
    block = Block(tables, params, [0], factory(chosen))
    block.run()
    p = block.outputs()[0].patients
    assert p["discontinuation_reason"].tolist() == [1, 1]
    assert p["discontinuation_day"].tolist() == [14, 35]  # visit 2, visit 3
    assert p["visits"].tolist() == [3, 4]
    assert p["injections"].tolist() == [2, 3]


@pytest.mark.parametrize(
    ("max_injections", "gap_days", "phase"), [(0, 84, False), (0, 7, True), (2, 84, True)]
)
def test_improvement_needs_few_injections_or_a_gap(
    max_injections: int, gap_days: int, phase: bool
) -> None:
    """Patient 0 at update 1 has had 2 injections, 7 days apart; its phase draw (0.3 < 0.4)
    starts a phase only if 2 <= max_treatments_for_improvement or 7 >= the gap needed."""
    protocol = simple_protocol(
        parameters__vision__vision_improvement__max_treatments_for_improvement=max_injections,
        parameters__vision__vision_improvement__treatment_gap_for_improvement_days=gap_days,
    )
    params = RunParameters(n_patients=1, years=15 / 365.25, seed=7)
    block = Block(compile_time_based(protocol), params, [0], factory(CHOSEN))
    block.run()
    expected = 65.0 + (0.8 + 0.3 * 1.0 if phase else gradual_mean(ACTIVE, 7))
    assert block.final_va[0] == pytest.approx(expected, abs=1e-12)
