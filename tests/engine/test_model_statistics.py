"""The vectorised model matches DESIGN section 4: frequencies, vision, schedules, rules.

Statistical checks use at least 200k simulated visits and a 4-standard-error tolerance; the
seed is fixed, so each check is deterministic and printed in its failure message.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engine.model.parameters import DAYS_PER_MONTH
from engine.model.protocol_loader import load_protocol
from engine.model.states import STATE_NAMES, DiseaseState
from engine.model.v1.tables import compile_protocol
from tests.helpers import (
    V1_PROTOCOL,
    concat_columns,
    constant_matrix,
    make_protocol,
    matrix,
    simulate,
)
from tests.reference_model import simulate_patient

SEED = 20261129
Z = 4.0


def _pairs(visits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (previous, next) of consecutive visits of the same patient."""
    same = visits["patient_id"][1:] == visits["patient_id"][:-1]
    previous = np.flatnonzero(same)
    return previous, previous + 1


def _assert_rate(observed: int, trials: int, p: float, label: str) -> None:
    if p in (0.0, 1.0):
        assert observed == p * trials, f"{label}: {observed}/{trials}, expected exactly p={p}"
        return
    se = math.sqrt(p * (1 - p) / trials)
    assert abs(observed / trials - p) <= Z * se, (
        f"{label}: {observed / trials:.5f} vs {p:.5f} (n={trials}, seed={SEED})"
    )


@pytest.fixture(scope="module")
def default_run():
    protocol = load_protocol(V1_PROTOCOL)
    params, outputs = simulate(protocol, n_patients=10_000, years=5, seed=SEED)
    return protocol, params, concat_columns(outputs, "patients"), concat_columns(outputs, "visits")


@pytest.fixture(scope="module")
def fixed_run():
    protocol = load_protocol("aflibercept_fixed_8_weekly")
    params, outputs = simulate(protocol, n_patients=8_000, years=5, seed=SEED)
    return protocol, params, concat_columns(outputs, "patients"), concat_columns(outputs, "visits")


def _expected_row(protocol, state: str, injected: bool) -> np.ndarray:
    """The matrix row, multiplied by the treatment effect after an injection, renormalised."""
    row = getattr(protocol.disease_transitions, state)
    weights = np.array([getattr(row, target) for target in STATE_NAMES])
    if injected:
        multipliers = getattr(protocol.treatment_effect_on_transitions, state).multipliers
        weights = weights * np.array([getattr(multipliers, target) for target in STATE_NAMES])
    return weights / weights.sum()


def test_transition_frequencies_match_the_renormalised_matrix(default_run, fixed_run):
    """From each state, with and without an injection before, over >= 200k transitions."""
    covered = set()
    total = 0
    for protocol, _, _, visits in (default_run, fixed_run):
        before, after = _pairs(visits)
        code = visits["disease_state"][before] + 4 * visits["injected"][before]
        target = visits["disease_state"][after]
        total += len(before)
        for row in range(8):
            selected = target[code == row]
            if len(selected) < 2_000:
                continue
            covered.add((STATE_NAMES[row % 4], row >= 4))
            counts = np.bincount(selected, minlength=4)
            expected = _expected_row(protocol, STATE_NAMES[row % 4], row >= 4)
            for state in range(4):
                _assert_rate(
                    int(counts[state]),
                    len(selected),
                    expected[state],
                    f"{protocol.name}: {STATE_NAMES[row % 4]} (injected={row >= 4}) -> {STATE_NAMES[state]}",
                )
    assert total >= 200_000
    assert covered >= {
        ("NAIVE", True),
        ("STABLE", False),
        ("STABLE", True),
        ("ACTIVE", True),
        ("HIGHLY_ACTIVE", True),
    }


def test_injection_multiplies_and_renormalises_the_row():
    tables = compile_protocol(load_protocol(V1_PROTOCOL))
    base = np.array([0.0, 0.2, 0.7, 0.1])
    treated = base * np.array([1.0, 1.8, 0.85, 0.5])
    np.testing.assert_allclose(tables.transition_probabilities[DiseaseState.ACTIVE], base)
    np.testing.assert_allclose(
        tables.transition_probabilities[DiseaseState.ACTIVE + 4], treated / treated.sum()
    )


def test_vision_changes_match_each_scenario_mean_and_std(default_run, fixed_run):
    """Changes are rounded normals: mean as specified, variance std**2 + 1/12 (rounding)."""
    checked = 0
    for protocol, _, patients, visits in (default_run, fixed_run):
        before, after = _pairs(visits)
        # Far from 0 and 100 the clip never binds, so the raw rounded draw is observed.
        inside = (visits["vision"][before] >= 25) & (visits["vision"][before] <= 75)
        change = (visits["vision"][after] - visits["vision"][before]).astype(float)[inside]
        state = visits["disease_state"][after][inside]
        treated = visits["injected"][after][inside]
        first = visits["visit"] == 0
        baseline = patients["baseline_vision"]
        first_inside = (baseline >= 25) & (baseline <= 75)
        groups = {
            ("naive", True): (visits["vision"][first] - baseline)[first_inside].astype(float),
        }
        for s, name in enumerate(STATE_NAMES):
            for t in (False, True):
                groups.setdefault((name.lower(), t), change[(state == s) & (treated == t)])
        for (name, t), values in groups.items():
            if len(values) < 5_000:
                continue
            scenario = getattr(
                protocol.vision_change_model, f"{name}_{'treated' if t else 'untreated'}"
            )
            variance = scenario.std**2 + 1 / 12
            n = len(values)
            label = f"{protocol.name} {name} treated={t} n={n} seed={SEED}"
            assert abs(values.mean() - scenario.mean) <= Z * math.sqrt(variance / n), label
            assert abs(values.var(ddof=1) - variance) <= Z * variance * math.sqrt(2 / (n - 1)), (
                label
            )
            checked += 1
    assert checked >= 5


def test_treat_and_extend_extends_every_stable_visit_up_to_the_maximum():
    protocol = make_protocol(disease_transitions=constant_matrix("STABLE"))
    _, outputs = simulate(protocol, n_patients=50, years=3)
    visits = concat_columns(outputs, "visits")
    first = visits["patient_id"] == 7
    intervals = visits["interval_days"][first]
    expected = [28, 42, 56, 70, 84, 98, 112]
    assert intervals[: len(expected)].tolist() == expected
    assert set(intervals[len(expected) : -1].tolist()) == {112}
    assert intervals[-1] == -1  # the last visit has no next interval
    assert visits["injected"][first].tolist() == [True] + [False] * (first.sum() - 1)
    days = visits["day"][first]
    assert days.tolist() == np.concatenate(([0], np.cumsum(intervals[:-1]))).tolist()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # ACTIVE keeps the interval, STABLE extends it: 28 28 42 42 56 56 ...
        (
            {"NAIVE": {"ACTIVE": 1}, "ACTIVE": {"STABLE": 1}, "STABLE": {"ACTIVE": 1}},
            [28, 28, 42, 42, 56, 56, 70],
        ),
        # STABLE extends, HIGHLY_ACTIVE shortens: 28 42 28 42 28 ...
        (
            {
                "NAIVE": {"STABLE": 1},
                "STABLE": {"HIGHLY_ACTIVE": 1},
                "HIGHLY_ACTIVE": {"STABLE": 1},
            },
            [28, 42, 28, 42, 28],
        ),
        # Always HIGHLY_ACTIVE: shortening never goes below the minimum.
        ({"NAIVE": {"HIGHLY_ACTIVE": 1}, "HIGHLY_ACTIVE": {"HIGHLY_ACTIVE": 1}}, [28, 28, 28, 28]),
    ],
    ids=["active-stable", "stable-highly-active", "always-highly-active"],
)
def test_treat_and_extend_intervals_follow_forced_state_paths(rows, expected):
    protocol = make_protocol(
        disease_transitions=matrix(
            {**{s: {"STABLE": 1} for s in ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")}, **rows}
        ),
        treatment_effect_on_transitions={},
    )
    _, outputs = simulate(protocol, n_patients=20, years=2)
    visits = concat_columns(outputs, "visits")
    mine = visits["patient_id"] == 3
    assert visits["interval_days"][mine][: len(expected)].tolist() == expected
    injected = visits["injected"][mine][1:]
    active = visits["disease_state"][mine][1:] >= DiseaseState.ACTIVE
    assert (injected == active).all()


def test_loading_doses_inject_at_minimum_interval_then_treat_and_extend_takes_over():
    protocol = make_protocol(disease_transitions=constant_matrix("STABLE"), loading_doses=3)
    _, outputs = simulate(protocol, n_patients=10, years=2)
    visits = concat_columns(outputs, "visits")
    mine = visits["patient_id"] == 0
    assert visits["injected"][mine][:5].tolist() == [True, True, True, False, False]
    assert visits["day"][mine][:6].tolist() == [0, 28, 56, 98, 154, 224]


def test_fixed_protocol_injects_every_visit_at_the_maximum_interval_after_loading():
    protocol = load_protocol("aflibercept_fixed_8_weekly")
    _, outputs = simulate(protocol, n_patients=200, years=2)
    visits = concat_columns(outputs, "visits")
    assert visits["injected"].all()
    mine = visits["patient_id"] == 5
    days = visits["day"][mine].tolist()
    assert days[:6] == [0, 28, 56, 112, 168, 224]


def test_prn_visits_monthly_and_injects_only_active_disease_after_loading():
    protocol = load_protocol("ranibizumab_prn_monthly")
    _, outputs = simulate(protocol, n_patients=2_000, years=2)
    visits = concat_columns(outputs, "visits")
    steps = np.diff(visits["day"])[visits["patient_id"][1:] == visits["patient_id"][:-1]]
    assert set(steps.tolist()) == {28}
    loading = visits["visit"] < 3
    assert visits["injected"][loading].all()
    later = ~loading
    active = visits["disease_state"] >= DiseaseState.ACTIVE
    assert (visits["injected"][later] == active[later]).all()
    assert 0 < visits["injected"][later].mean() < 1


# Vision never changes, so it stays at baseline (<= 90) and "below 100 letters" always holds.
FROZEN_VISION = {
    f"{state}_{treated}": {"mean": 0.0, "std": 0.0}
    for state in ("naive", "stable", "active", "highly_active")
    for treated in ("treated", "untreated")
}
RULE_PROBABILITY_FIELD = {
    "poor_vision": "poor_vision_probability",
    "high_injections": "high_injection_probability",
    "long_treatment": "long_treatment_probability",
}

RULES = {
    # poor vision always holds (threshold above 100); the other rules never get a say
    "poor_vision": {"poor_vision_threshold": 100.0, "poor_vision_probability": 0.05},
    # vision is never below 0 and every fixed visit injects, so injections > 0 holds
    "high_injections": {
        "poor_vision_threshold": 0.0,
        "high_injection_count": 0,
        "high_injection_probability": 0.03,
    },
    # every visit after enrollment is more than 0 months after it
    "long_treatment": {
        "poor_vision_threshold": 0.0,
        "high_injection_count": 10_000,
        "long_treatment_months": 0.0,
        "long_treatment_probability": 0.02,
    },
}


@pytest.mark.parametrize("reason", RULES)
def test_each_discontinuation_rule_stops_at_its_probability_per_visit(reason):
    rules = {
        "poor_vision_threshold": 0.0,
        "poor_vision_probability": 0.0,
        "high_injection_count": 10_000,
        "high_injection_probability": 0.0,
        "long_treatment_months": 1_000.0,
        "long_treatment_probability": 0.0,
        **RULES[reason],
    }
    protocol = make_protocol(
        protocol_type="fixed",
        min_interval_days=28,
        max_interval_days=28,
        discontinuation_rules=rules,
        vision_change_model=FROZEN_VISION,
    )
    _, outputs = simulate(protocol, n_patients=12_000, years=3, seed=SEED)
    patients = concat_columns(outputs, "patients")
    at_risk = int((patients["visits"] - 1).sum())  # every visit after enrollment
    stopped = int(patients["discontinued"].sum())
    probability = RULES[reason][RULE_PROBABILITY_FIELD[reason]]
    assert at_risk >= 200_000
    _assert_rate(stopped, at_risk, probability, f"{reason} per visit")
    reasons = patients["discontinuation_reason"][patients["discontinued"]]
    assert set(reasons.tolist()) == {list(RULES).index(reason)}


def test_first_matching_rule_decides_even_when_its_probability_is_zero():
    rules = {
        "poor_vision_threshold": 100.0,  # always holds, probability 0
        "poor_vision_probability": 0.0,
        "high_injection_count": 0,  # also always holds, but comes second
        "high_injection_probability": 1.0,
        "long_treatment_months": 0.0,
        "long_treatment_probability": 1.0,
    }
    protocol = make_protocol(
        protocol_type="fixed", discontinuation_rules=rules, vision_change_model=FROZEN_VISION
    )
    _, outputs = simulate(protocol, n_patients=500, years=2)
    assert not concat_columns(outputs, "patients")["discontinued"].any()


def test_discontinuation_ends_follow_up_at_that_visit(default_run):
    _, params, patients, visits = default_run
    stopped = patients["discontinued"]
    assert stopped.any()
    last = np.cumsum(patients["visits"]) - 1
    assert (patients["discontinuation_day"][stopped] == visits["day"][last][stopped]).all()
    assert (patients["discontinuation_day"][~stopped] == -1).all()
    assert (patients["discontinuation_reason"][~stopped] == -1).all()
    horizon_ended = ~stopped
    next_day = visits["day"][last] + 112
    assert (next_day[horizon_ended] >= params.horizon_days - 112).all()


def test_baseline_vision_is_a_clipped_rounded_normal(default_run):
    protocol, _, patients, _ = default_run
    b = protocol.baseline_vision
    values = patients["baseline_vision"].astype(float)
    assert values.min() >= b.min and values.max() <= b.max

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - b.mean) / (b.std * math.sqrt(2))))

    support = np.arange(b.min, b.max + 1)
    upper = np.array([cdf(k + 0.5) for k in support])
    lower = np.array([cdf(k - 0.5) for k in support])
    upper[-1], lower[0] = 1.0, 0.0  # clipping puts the tails on the bounds
    pmf = upper - lower
    mean = float((support * pmf).sum())
    sd = math.sqrt(float(((support - mean) ** 2 * pmf).sum()))
    assert abs(values.mean() - mean) <= Z * sd / math.sqrt(len(values)), f"seed={SEED}"
    assert values.mean() == pytest.approx(70, abs=0.5)


def test_rows_are_consistent_with_the_schedule(default_run):
    _, params, patients, visits = default_run
    assert (visits["day"] < params.horizon_days).all()
    before, after = _pairs(visits)
    assert (visits["day"][after] - visits["day"][before] == visits["interval_days"][before]).all()
    assert (visits["visit"][after] == visits["visit"][before] + 1).all()
    starts = np.concatenate(([0], np.cumsum(patients["visits"])[:-1]))
    assert (visits["visit"][starts] == 0).all()
    last = np.cumsum(patients["visits"]) - 1
    assert (visits["interval_days"][last] == -1).all()
    assert (np.delete(visits["interval_days"], last) > 0).all()
    assert (patients["final_vision"] == visits["vision"][last]).all()
    assert (patients["final_state"] == visits["disease_state"][last]).all()
    assert (patients["injections"] == np.add.reduceat(visits["injected"].astype(int), starts)).all()
    assert (visits["vision"] >= 0).all() and (visits["vision"] <= 100).all()


def test_kernel_agrees_with_an_independent_per_patient_loop():
    """Outcome means of the vectorised kernel and the naive reference loop agree."""
    protocol = load_protocol(V1_PROTOCOL)
    params, outputs = simulate(protocol, n_patients=20_000, years=4, seed=SEED)
    kernel = concat_columns(outputs, "patients")
    rng = random.Random(SEED)
    reference = [simulate_patient(protocol, params.horizon_days, rng) for _ in range(4_000)]
    measures = {
        "visits": (kernel["visits"], [len(p.visits) for p in reference]),
        "injections": (kernel["injections"], [p.injections for p in reference]),
        "final_vision": (kernel["final_vision"], [p.final_vision for p in reference]),
        "discontinued": (kernel["discontinued"], [p.discontinued for p in reference]),
    }
    for name, (kernel_values, reference_values) in measures.items():
        ours = np.asarray(kernel_values, dtype=float)
        theirs = np.asarray(reference_values, dtype=float)
        se = math.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) <= Z * se, (
            f"{name}: kernel {ours.mean():.3f} vs reference {theirs.mean():.3f} (seed={SEED})"
        )


def test_long_treatment_counts_months_of_thirty_point_four_days():
    protocol = make_protocol(
        protocol_type="prn",
        min_interval_days=28,
        max_interval_days=28,
        disease_transitions=constant_matrix("STABLE"),
        discontinuation_rules={
            "poor_vision_threshold": 0.0,
            "poor_vision_probability": 0.0,
            "high_injection_count": 10_000,
            "high_injection_probability": 0.0,
            "long_treatment_months": 3.0,
            "long_treatment_probability": 1.0,
        },
    )
    _, outputs = simulate(protocol, n_patients=5, years=1)
    patients = concat_columns(outputs, "patients")
    # 3 months = 91.3 days: the visit on day 84 is not past it, the one on day 112 is.
    assert patients["discontinuation_day"].tolist() == [112] * 5
    assert 84 < 3 * DAYS_PER_MONTH < 112
