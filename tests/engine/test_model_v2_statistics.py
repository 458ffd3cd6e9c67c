"""The time-based kernel agrees with docs/model.md, rule by rule (issue 11).

Each test isolates one rule with a protocol that switches the others off (no mortality unless
tested, no discontinuation, no noise, constant transition matrices) and compares the kernel's
columns with expectations from the independent reference (tests/reference_model_v2.py): its
pure per-rule functions give exact probabilities, so most tolerances carry only the kernel's
sampling error. Every statistical test fails falsely with probability at most ALPHA = 1e-5
(split evenly over its own checks; Bonferroni). This file, test_model_v2_population.py and
test_model_v2_rules.py hold 33 statistical tests (the other v2 checks are exact, with
false-failure rate 0), so the family-wise false-failure rate is at most 33 x 1e-5 = 3.3e-4
< 1/1000. Normal
approximations are used only where expected counts are >= 100 (their tail error is then
well inside a factor of 2, which the family budget absorbs). Seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.engine.model_v2_support import (
    ALPHA,
    BASELINES,
    STATES,
    assert_chi2,
    assert_z,
    constant_rows,
    life_table,
    make_protocol,
    rounded_normal_pmf,
    run_kernel,
)
from tests.reference_model_v2 import (
    gradual_change,
    haemorrhage_risk,
    transition_row,
    vision_effect,
)

SEED = 20261202
P = "parameters"
V = "parameters.vision"


# --- transitions ------------------------------------------------------------------------------
def test_transitions_by_effect_level():
    """State at visit j+1 (day 14(j+1)) given the state at visit j and days d since the last
    injection before: the row P'[s] with e(d) (full, halving, floored at 0.3; x0.3 for
    non-responders; none before the first injection). PRN every 14 days injects ACTIVE and
    HIGHLY_ACTIVE, so d ranges over 14 ... 364 and many rows occur.

    Pearson chi-square pooled over every (state, row) with >= 5 expected per cell (alpha
    1e-5), ~500k transitions; STABLE is sticky and its injection effect strong, so long gaps
    (effect at its 0.3 floor) are common. Power (checked by giving the kernel a mutated
    protocol): the floor ignored (minimum_effect 0) or non_responder_effect 0.4 instead of
    0.3 fail with p < 1e-9."""
    protocol = make_protocol(
        {
            f"{P}.disease_transitions.fortnightly_transitions.STABLE": {
                "NAIVE": 0.0, "STABLE": 0.96, "ACTIVE": 0.04, "HIGHLY_ACTIVE": 0.0
            },
            f"{P}.disease_transitions.fortnightly_transitions.ACTIVE": {
                "NAIVE": 0.0, "STABLE": 0.2, "ACTIVE": 0.7, "HIGHLY_ACTIVE": 0.1
            },
            f"{P}.treatment_effect.treatment_multipliers.STABLE.multipliers": {
                "STABLE": 1.05, "ACTIVE": 0.1
            },
            f"{P}.treatment_effect.treatment_decay.minimum_effect": 0.3,
        }
    )  # fmt: skip
    patients, visits = run_kernel(protocol, 20_000, 365, SEED + 6)
    pid, day = visits["patient_id"].astype(np.int64), visits["day"].astype(np.int64)
    key = np.where(visits["injected"], pid * 10_000 + day, pid * 10_000 - 1)
    last = np.maximum.accumulate(key) - pid * 10_000
    pair = (pid[1:] == pid[:-1]) & (day[1:] - day[:-1] == 14)
    before, after = np.flatnonzero(pair), np.flatnonzero(pair) + 1
    responder = patients["responder"][pid[before]]
    d = np.where(last[before] >= 0, day[after] - last[before], -1)
    code = visits["disease_state"][before].astype(int) * 2 + responder
    counts: dict[tuple, np.ndarray] = {}
    for c in np.unique(code):
        for dd in np.unique(d[code == c]):
            state, resp = divmod(int(c), 2)
            row = transition_row(
                protocol.parameters, state, None if dd < 0 else int(dd), bool(resp)
            )
            sel = (code == c) & (d == dd)
            obs = np.bincount(visits["disease_state"][after[sel]].astype(int), minlength=4)
            k = (state, tuple(round(x, 12) for x in row))
            counts[k] = counts.get(k, 0) + obs
    observed = np.concatenate([counts[k] for k in counts])
    expected = np.concatenate([counts[k].sum() * np.array(k[1]) for k in counts])
    assert len(counts) >= 12
    assert_chi2(observed, expected, "transitions by state and effect")


# --- vision -----------------------------------------------------------------------------------
VISION_DECLINE = {
    "NAIVE": {"untreated": {"mean": -1.0, "std": 0.5}, "treated": {"mean": 0.5, "std": 0.2}},
    "STABLE": {"untreated": {"mean": -2.0, "std": 0.5}, "treated": {"mean": 0.0, "std": 0.1}},
    "ACTIVE": {"untreated": {"mean": -1.5, "std": 0.8}, "treated": {"mean": -0.2, "std": 0.3}},
    "HIGHLY_ACTIVE": {"untreated": {"mean": -2.5, "std": 1.0}, "treated": {"mean": -0.6, "std": 0.4}},
}  # fmt: skip


def _vision_protocol(state: str, loading: int, interval: int):
    return make_protocol(
        {
            "baseline_vision_distribution": {"type": "normal", "mean": 80.0, "std": 0.0},
            "loading_dose_injections": loading,
            "min_interval_days": interval,
            "max_interval_days": interval,
            f"{P}.disease_transitions.fortnightly_transitions": constant_rows(state),
            f"{V}.vision_decline_fortnightly": VISION_DECLINE,
        }
    )


def _expected_sum(protocol, state: int, injected: bool, responder: bool, k: int):
    means, variances = 0.0, 0.0
    for j in range(1, k + 1):
        v = vision_effect(protocol.parameters, 14 * j if injected else None, responder)
        m, s = gradual_change(protocol.parameters, state, v)
        means, variances = means + m, variances + s * s
    return means, variances


@pytest.mark.parametrize(
    "state,treated",
    [
        ("NAIVE", True),
        ("STABLE", False),
        ("ACTIVE", True),
        ("ACTIVE", False),
        ("HIGHLY_ACTIVE", True),
    ],
)
def test_gradual_vision_change_by_state_and_treatment(state, treated):
    """True VA after 21 fortnights = 80 + sum of N(u + v(d)(t - u), u.std + v(d)(t.std - u.std))
    with d = 14k after one injection on day 0 (or v = 0 untreated); final_vision is its
    rounding. Chi-square per responder group (alpha 5e-6 each), 10k patients. Power: v
    taken as 1 throughout or the std not interpolated moves the mean by > 1 letter or the
    SD by > 30 %, chi2 > 300."""
    code = STATES.index(state)
    protocol = _vision_protocol(state, 1 if treated else 0, 365)
    patients, _ = run_kernel(protocol, 10_000, 300, SEED + 7)
    for responder in (True, False):
        mask = patients["responder"] == responder
        mean, var = _expected_sum(protocol, code, treated, responder, 21)
        pmf = rounded_normal_pmf(80 + mean, math.sqrt(var))
        observed = np.bincount(patients["final_vision"][mask].astype(int), minlength=101)
        assert_chi2(
            observed, mask.sum() * pmf, f"{state} treated={treated} r={responder}", ALPHA / 2
        )


def test_vision_effect_curve_fortnight_by_fortnight():
    """v(d) at d = 14 ... 294 (full to day 56, 1 -> 0.5 at 84, -> 0.25 at 112, then -0.25 per
    112 days to 0 at 224): STABLE patients injected once on day 0 and visited every 14 days
    without noise, so visit k shows round(80 + sum of k changes). One z per (k, responder)
    on the mean (42 checks, alpha 1e-5/42 each, Bonferroni, valid under their dependence).
    Power: v off by 0.1 at one d moves that fortnight's mean by 0.2 letters, z > 8."""
    protocol = _vision_protocol("STABLE", 1, 14)
    patients, visits = run_kernel(protocol, 10_000, 300, SEED + 8)
    resp = patients["responder"][visits["patient_id"]]
    assert not visits["injected"][visits["day"] > 0].any(), "STABLE PRN never injects"
    for k in range(1, 22):
        for responder in (True, False):
            sel = (visits["day"] == 14 * k) & (resp == responder)
            mean, var = _expected_sum(protocol, 1, True, responder, k)
            pmf = rounded_normal_pmf(80 + mean, math.sqrt(var))
            n = np.arange(101)
            e = float((n * pmf).sum())
            v = float(((n - e) ** 2 * pmf).sum())
            got = visits["vision"][sel].astype(float)
            assert_z(got.mean(), e, v / len(got), f"fortnight {k} r={responder}", ALPHA / 42)


@pytest.mark.parametrize(
    "state,loading", [("ACTIVE", 1), ("HIGHLY_ACTIVE", 1), ("ACTIVE", 0), ("STABLE", 1)]
)
def test_haemorrhage_frequency(state, loading):
    """Haemorrhages per fortnight: 0.02 up to 84 days after an injection, 0.05 up to 168,
    0.1 later or never injected; x2 in HIGHLY_ACTIVE; none in STABLE. Each takes exactly 10
    letters from 90 (no other change), so final_vision = 90 - 10 x count. Chi-square of the
    count against its exact Poisson-binomial law over 21 fortnights (alpha 1e-5), 20k
    patients. Power: the 84/168-day boundaries shifted by a fortnight or the multiplier
    ignored moves the mean count by > 0.1 (z > 10). STABLE: exactly no loss."""
    protocol = make_protocol(
        {
            "baseline_vision_distribution": {"type": "normal", "mean": 90.0, "std": 0.0},
            "loading_dose_injections": loading,
            "min_interval_days": 365,
            "max_interval_days": 365,
            f"{P}.disease_transitions.fortnightly_transitions": constant_rows(state),
            f"{V}.hemorrhage_risk.risk_treated_fortnightly": 0.02,
            f"{V}.hemorrhage_risk.risk_medium_gap_fortnightly": 0.05,
            f"{V}.hemorrhage_risk.risk_long_gap_fortnightly": 0.1,
        }
    )
    patients, _ = run_kernel(protocol, 20_000, 300, SEED + 9)
    final = patients["final_vision"].astype(int)
    if state == "STABLE":
        assert np.all(final == 90)
        return
    assert np.all((90 - final) % 10 == 0)
    pmf = np.array([1.0])
    for k in range(1, 22):
        r = haemorrhage_risk(protocol.parameters, STATES.index(state), 14 * k if loading else None)
        pmf = np.append(pmf * (1 - r), 0) + np.append(0, pmf * r)
    pmf = np.append(pmf[:9], pmf[9:].sum())  # VA floors at 0 after 9 losses
    observed = np.bincount(np.minimum((90 - final) // 10, 9), minlength=10)
    assert_chi2(observed, 20_000 * pmf, f"haemorrhages {state} loading={loading}")


# --- everything at once -----------------------------------------------------------------------
def test_kernel_and_reference_agree_with_every_rule_on():
    """A protocol with every rule on (T&E with loading, noise, improvement, haemorrhage,
    mortality, all discontinuation categories, responders, beta_with_threshold baseline):
    kernel (20k patients) and reference (2,500 patients, its own random numbers) over 2 years
    agree on the mean measured baseline, final VA, injections, visits, and the shares that
    die and that stop for any reason. Two-sample z per statistic (6 checks, alpha 1e-5/6
    each); the reference's sampling error dominates: detects a 1.5-letter difference in mean
    final VA, or 10 % in injections, with probability > 0.9."""
    from tests.engine.model_v2_support import DISCONTINUATION, reference_columns

    protocol = make_protocol(
        {
            "protocol_type": "treat_and_extend",
            "loading_dose_injections": 3,
            "min_interval_days": 28,
            "max_interval_days": 112,
            "extension_days": 14,
            "shortening_days": 14,
            "baseline_vision_distribution": BASELINES["beta_with_threshold"],
            f"{P}.mortality.mortality_rates": {"male": life_table(1.3), "female": life_table(1.0)},
            f"{P}.discontinuation.discontinuation_parameters": DISCONTINUATION,
            f"{V}.vision_decline_fortnightly": VISION_DECLINE,
            f"{V}.vision_measurement.measurement_noise_std": 2.5,
            f"{V}.vision_improvement.improvement_probability": {
                "STABLE": 0.2, "ACTIVE": 0.3, "HIGHLY_ACTIVE": 0.1
            },
            f"{V}.vision_improvement.improvement_rate": {
                s: {"mean": 1.0, "std": 0.5} for s in STATES[1:]
            },
            f"{V}.hemorrhage_risk.risk_treated_fortnightly": 0.01,
            f"{V}.hemorrhage_risk.risk_medium_gap_fortnightly": 0.03,
            f"{V}.hemorrhage_risk.risk_long_gap_fortnightly": 0.06,
            f"{V}.hemorrhage_risk.hemorrhage_loss_max": 20,
        }
    )  # fmt: skip
    kernel, _ = run_kernel(protocol, 20_000, 730, SEED + 10)
    reference, _ = reference_columns(protocol, 2_500, 730, SEED + 10)
    statistics = {
        "baseline": lambda c: c["baseline_vision"].astype(float),
        "final VA": lambda c: c["final_vision"].astype(float),
        "injections": lambda c: c["injections"].astype(float),
        "visits": lambda c: c["visits"].astype(float),
        "died": lambda c: (c["death_day"] >= 0).astype(float),
        "stopped alive": lambda c: (c["discontinuation_reason"] > 0).astype(float),
    }
    for name, stat in statistics.items():
        a, b = stat(kernel), stat(reference)
        variance = a.var() / len(a) + b.var() / len(b)
        assert_z(a.mean(), b.mean(), variance, f"kernel vs reference: {name}", ALPHA / 6)


def test_discontinued_patients_keep_changing_untreated_until_the_horizon():
    """After discontinuation a patient is still simulated, untreated and unvisited (section
    4): everyone stops at visit 1 (administrative, probability 1, day 14) after one injection
    on day 0, so the true VA at day 300 is 80 + the 21 fortnights' changes with v(14k), exactly
    as if never stopped; a kernel that froze the patient would show the day-14 VA. Exact:
    one injection, two visits, stop on day 14 for administrative reasons. Chi-square per
    responder group (alpha 5e-6 each), 10k patients; power as in the gradual-change test."""
    protocol = make_protocol(
        {
            "baseline_vision_distribution": {"type": "normal", "mean": 80.0, "std": 0.0},
            "protocol_type": "fixed",
            f"{P}.disease_transitions.fortnightly_transitions": constant_rows("ACTIVE"),
            f"{V}.vision_decline_fortnightly": VISION_DECLINE,
            f"{P}.discontinuation.discontinuation_parameters": {
                "administrative": {"probability_per_visit": 1.0}
            },
        }
    )
    patients, _ = run_kernel(protocol, 10_000, 300, SEED + 11)
    assert np.all(patients["injections"] == 1) and np.all(patients["visits"] == 2)
    assert np.all(patients["discontinuation_day"] == 14)
    assert np.all(patients["discontinuation_reason"] == 6)
    for responder in (True, False):
        mask = patients["responder"] == responder
        mean, var = _expected_sum(protocol, STATES.index("ACTIVE"), True, responder, 21)
        pmf = rounded_normal_pmf(80 + mean, math.sqrt(var))
        observed = np.bincount(patients["final_vision"][mask].astype(int), minlength=101)
        assert_chi2(observed, mask.sum() * pmf, f"after stopping r={responder}", ALPHA / 2)


@pytest.mark.parametrize("state", ["STABLE", "ACTIVE", "HIGHLY_ACTIVE"])
def test_improvement_rate_is_a_truncated_normal_per_state(state):
    """In a phase the fortnight's change is max(0, mean + std x Z) with the current state's
    improvement_rate: with probability 1 of starting and injections every 14 days everyone is
    in a phase every fortnight, so final VA = 50 + 21 such changes (E max(0, X) = m Phi(m/s) +
    s phi(m/s)). z on the mean final VA (alpha 1e-5), 10k patients: detects the truncation
    ignored (a 0.4-letter shift per fortnight, 8 letters in all) or another state's rate
    (>= 0.2 letters per fortnight) at z > 20."""
    from statistics import NormalDist

    rates = {"STABLE": (0.3, 1.0), "ACTIVE": (-0.2, 1.5), "HIGHLY_ACTIVE": (0.8, 0.5)}
    protocol = make_protocol(
        {
            "protocol_type": "fixed",
            f"{P}.disease_transitions.fortnightly_transitions": constant_rows(state),
            f"{P}.treatment_effect.treatment_response.responder_probability": 1.0,
            f"{V}.vision_improvement.improvement_probability": dict.fromkeys(STATES[1:], 1.0),
            f"{V}.vision_improvement.improvement_rate": {
                s: {"mean": m, "std": sd} for s, (m, sd) in rates.items()
            },
            f"{V}.vision_improvement.max_treatments_for_improvement": 1000,
        }
    )
    patients, _ = run_kernel(protocol, 10_000, 300, SEED + 12)
    m, sd = rates[state]
    a = m / sd
    phi, cdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi), NormalDist().cdf(a)
    mean = m * cdf + sd * phi
    second = (m * m + sd * sd) * cdf + m * sd * phi
    var = 21 * (second - mean * mean) + 1 / 12
    final = patients["final_vision"].astype(float)
    assert_z(final.mean(), 50 + 21 * mean, var / len(final), f"improvement {state}")


def test_haemorrhage_loss_is_uniform_between_min_and_max():
    """A haemorrhage takes min + U' x (max - min) letters (5-25 here): one update (15-day
    horizon), untreated ACTIVE, risk 0.5, VA 100 otherwise unchanged, so final_vision is 100
    or round(100 - L): 76-94 each with probability 0.5/20, 75 and 95 with half that. Chi-square
    (alpha 1e-5), 20k patients; a loss drawn on 5-20 instead, or a risk of 0.45, gives
    chi2 > 200."""
    protocol = make_protocol(
        {
            "baseline_vision_distribution": {"type": "normal", "mean": 100.0, "std": 0.0},
            f"{P}.disease_transitions.fortnightly_transitions": constant_rows("ACTIVE"),
            f"{V}.hemorrhage_risk.risk_long_gap_fortnightly": 0.5,
            f"{V}.hemorrhage_risk.hemorrhage_loss_min": 5,
            f"{V}.hemorrhage_risk.hemorrhage_loss_max": 25,
        }
    )
    patients, _ = run_kernel(protocol, 20_000, 15, SEED + 13)
    pmf = np.zeros(101)
    pmf[100] = 0.5
    pmf[76:95] = 0.5 / 20
    pmf[[75, 95]] = 0.25 / 20
    observed = np.bincount(patients["final_vision"].astype(int), minlength=101)
    assert_chi2(observed, 20_000 * pmf, "haemorrhage loss")
