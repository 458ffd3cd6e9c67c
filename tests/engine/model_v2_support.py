"""Time-based protocols for tests, kernel runs, and the exact statistics the v2 tests use.

The parameter values are this module's own (round, synthetic numbers of the origin files'
shape, not copies of them), so each test can switch a rule on or off by changing one field.
Statistics are exact or standard (chi-square by the regularised incomplete gamma function,
normal tails by `statistics.NormalDist`); no scipy.
"""

from __future__ import annotations

import copy
import math
import os
from statistics import NormalDist
from typing import Any

import msgspec
import numpy as np

from engine.model.parameters import RunParameters
from engine.model.v2.schema import TimeBasedProtocol
from tests.reference_model_v2 import REASONS, simulate_patient

# Per-test false-failure rate; about 30 statistical tests keep the family below 1/1000.
ALPHA = 1e-5
STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")

# Every visit-time discontinuation category on, with probabilities large enough that the
# priority order shows in the counts.
DISCONTINUATION = {
    "poor_vision": {"vision_threshold": 40, "discontinuation_probability": 0.5, "grace_period_visits": 1},
    "deterioration": {"vision_loss_threshold": -8, "visits_with_loss_threshold": 2,
                      "discontinuation_probability": 0.4},
    "treatment_decision": {"stable_disease_visits_threshold": 4, "stable_discontinuation_probability": 0.1,
                           "no_improvement_visits_threshold": 3, "no_improvement_probability": 0.08,
                           "min_treatments_before_decision": 2},
    "attrition": {"base_probability_per_visit": 0.01,
                  "time_adjustment": {"months_0_12": 1.0, "months_12_24": 2.0, "months_24_plus": 3.0},
                  "injection_burden_adjustment": {"injections_per_year_0_6": 1.0,
                                                  "injections_per_year_6_12": 1.5,
                                                  "injections_per_year_12_plus": 2.0}},
    "administrative": {"probability_per_visit": 0.01},
}  # fmt: skip

# One baseline VA distribution of each type (docs/model.md section 2).
BASELINES = {
    "normal": {"type": "normal", "mean": 60.0, "std": 15.0, "min": 20.0, "max": 90.0},
    "uniform": {"type": "uniform", "min": 30.0, "max": 80.0},
    "beta": {"type": "beta", "alpha": 3.5, "beta": 2.0, "min": 5.0, "max": 98.0},
    "beta_with_threshold": {
        "type": "beta_with_threshold",
        "alpha": 3.5,
        "beta": 2.0,
        "min": 5.0,
        "max": 98.0,
        "threshold": 70.0,
        "threshold_reduction": 0.6,
    },
}


def constant_rows(target: str) -> dict[str, dict[str, float]]:
    """A fortnightly matrix that sends every state to `target`."""
    return {row: {col: float(col == target) for col in STATES} for row in STATES}


def life_table(scale: float = 1.0) -> dict[int, float]:
    """A synthetic Gompertz-shaped annual death probability by age 50-100 (times `scale`)."""
    return {a: min(0.9, scale * 0.004 * math.exp(0.085 * (a - 50))) for a in range(50, 101)}


def base_protocol_dict() -> dict[str, Any]:
    """A complete time-based protocol with every rule switched on, as plain data."""
    change = {"mean": 0.0, "std": 0.0}
    parameters = {
        "disease_transitions": {
            "fortnightly_transitions": {
                "NAIVE": {"NAIVE": 0.0, "STABLE": 0.3, "ACTIVE": 0.6, "HIGHLY_ACTIVE": 0.1},
                "STABLE": {"NAIVE": 0.0, "STABLE": 0.9, "ACTIVE": 0.1, "HIGHLY_ACTIVE": 0.0},
                "ACTIVE": {"NAIVE": 0.0, "STABLE": 0.1, "ACTIVE": 0.8, "HIGHLY_ACTIVE": 0.1},
                "HIGHLY_ACTIVE": {"NAIVE": 0.0, "STABLE": 0.05, "ACTIVE": 0.15, "HIGHLY_ACTIVE": 0.8},
            }
        },
        "treatment_effect": {
            "treatment_decay": {
                "full_effect_duration_days": 42,
                "half_life_days": 35,
                "minimum_effect": 0.1,
            },
            "treatment_multipliers": {
                "STABLE": {"multipliers": {"STABLE": 1.1, "ACTIVE": 0.5}},
                "ACTIVE": {"multipliers": {"STABLE": 3.0, "ACTIVE": 0.8, "HIGHLY_ACTIVE": 0.4}},
                "HIGHLY_ACTIVE": {"multipliers": {"STABLE": 2.0, "ACTIVE": 2.5}},
            },
            "treatment_response": {"responder_probability": 0.6, "non_responder_effect": 0.3},
        },
        "vision": {
            "vision_decline_fortnightly": {
                s: {"untreated": dict(change), "treated": dict(change)} for s in STATES
            },
            "vision_improvement": {
                "improvement_probability": {"STABLE": 0.0, "ACTIVE": 0.0, "HIGHLY_ACTIVE": 0.0},
                "improvement_rate": {s: dict(change) for s in STATES[1:]},
                "max_improvement_duration_fortnights": 6,
                "max_treatments_for_improvement": 5,
                "treatment_gap_for_improvement_days": 84,
            },
            "vision_ceilings": {
                "baseline_ceiling_factor": 2.0,
                "absolute_ceiling_default": 100,
                "absolute_ceiling_high_baseline": 100,
                "absolute_ceiling_low_baseline": 100,
                "high_baseline_threshold": 80,
                "low_baseline_threshold": 50,
            },
            "treatment_effect_decay": {
                "full_effect_duration_days": 56,
                "gradual_decline_end_days": 84,
                "faster_decline_end_days": 112,
                "effect_at_gradual_start": 1.0,
                "effect_at_faster_start": 0.5,
                "effect_at_minimal_start": 0.25,
            },
            "hemorrhage_risk": {
                "risk_treated_fortnightly": 0.0,
                "risk_medium_gap_fortnightly": 0.0,
                "risk_long_gap_fortnightly": 0.0,
                "treated_threshold_days": 84,
                "medium_gap_threshold_days": 168,
                "highly_active_multiplier": 2.0,
                "hemorrhage_loss_min": 10,
                "hemorrhage_loss_max": 10,
            },
            "vision_measurement": {"measurement_noise_std": 0.0},
            "misc_parameters": {"treatment_effect_threshold": 0.5, "minimal_effect_decay_rate": 0.25},
        },
        "discontinuation": {"discontinuation_parameters": {}},
        "demographics": {
            "age_distribution_weights": {
                "50-59": 0.05, "60-69": 0.2, "70-74": 0.2, "75-79": 0.25,
                "80-89": 0.25, "90-94": 0.03, "95+": 0.02,
            },
            "gender_distribution_by_age": {
                "50-64": 0.45, "65-74": 0.52, "75-84": 0.6, "85-94": 0.7, "95+": 0.8,
            },
            "survival_bias_factors": {"80-89": 0.9, "90-94": 0.8, "95+": 0.7},
            "population_type_adjustments": {
                "real_world": {},
                "trial": {
                    "age_shift": -4.0,
                    "female_proportion_adjustment": -0.1,
                    "mortality_risk_multiplier": 0.7,
                },
            },
        },
        "mortality": {
            "hazard_ratios": {"primary": 1.36},
            "mortality_rates": {"male": life_table(0.0), "female": life_table(0.0)},
        },
    }  # fmt: skip
    return {
        "name": "test time-based",
        "model_type": "time_based",
        "protocol_type": "prn",
        "loading_dose_injections": 0,
        "min_interval_days": 14,
        "max_interval_days": 14,
        "disease_transitions_file": "t.yaml",
        "treatment_effect_file": "e.yaml",
        "vision_parameters_file": "v.yaml",
        "discontinuation_parameters_file": "d.yaml",
        "demographics_parameters_file": "g.yaml",
        "baseline_vision_distribution": {"type": "normal", "mean": 50.0, "std": 0.0},
        "parameters": parameters,
    }


def make_protocol(changes: dict[str, Any] | None = None) -> TimeBasedProtocol:
    """The base protocol with dotted-path `changes` (``"parameters.vision.x": 1``), validated."""
    data = copy.deepcopy(base_protocol_dict())
    for dotted, value in (changes or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return msgspec.convert(data, TimeBasedProtocol)


def run_kernel(protocol: TimeBasedProtocol, n: int, horizon_days: int, seed: int):
    """Simulate a day-0 cohort with the kernel; (patients, visits) columns concatenated.

    With ``AMDSIM_V2_BACKEND=reference`` in the environment the reference model produces the
    columns instead (slow): the tests then check themselves against the reference.
    """
    if os.environ.get("AMDSIM_V2_BACKEND") == "reference":
        return reference_columns(protocol, n, horizon_days, seed)
    from engine.model.interface import compile_model

    params = RunParameters(n_patients=n, years=horizon_days / 365.25, seed=seed)
    assert params.horizon_days == horizon_days
    outputs = compile_model(protocol).simulate_shards(params, list(range(params.shard_count)))
    outputs = sorted(outputs, key=lambda o: o.shard_index)
    patients = {k: np.concatenate([o.patients[k] for o in outputs]) for k in outputs[0].patients}
    visits = {k: np.concatenate([o.visits[k] for o in outputs]) for k in outputs[0].visits}
    return patients, visits


def reference_columns(protocol: TimeBasedProtocol, n: int, horizon_days: int, seed: int):
    """The kernel's columns (the subset the tests read) from `n` reference patients."""
    pcols: dict[str, list] = {k: [] for k in PATIENT_KEYS}
    vcols: dict[str, list] = {k: [] for k in VISIT_KEYS}
    for pid in range(n):
        p = simulate_patient(protocol, horizon_days, seed * 1_000_003 + pid)
        row = (
            pid, p.age, int(p.sex == "male"), p.responder, p.baseline_measured,
            round(p.final_true), p.final_state, -1 if p.death_day is None else p.death_day,
            p.discontinuation_reason is not None,
            -1 if p.discontinuation_day is None else p.discontinuation_day,
            -1 if p.discontinuation_reason is None else REASONS.index(p.discontinuation_reason),
            p.injections, len(p.visits),
        )  # fmt: skip
        for key, value in zip(PATIENT_KEYS, row, strict=True):
            pcols[key].append(value)
        for i, v in enumerate(p.visits):
            interval = -1 if v.interval is None else v.interval
            for key, value in zip(
                VISIT_KEYS, (pid, i, v.day, v.vision, v.injected, v.state, interval), strict=True
            ):
                vcols[key].append(value)
    return {k: np.array(v) for k, v in pcols.items()}, {k: np.array(v) for k, v in vcols.items()}


PATIENT_KEYS = (
    "patient_id", "age", "sex", "responder", "baseline_vision", "final_vision", "final_state",
    "death_day", "discontinued", "discontinuation_day", "discontinuation_reason", "injections",
    "visits",
)  # fmt: skip
VISIT_KEYS = ("patient_id", "visit", "day", "vision", "injected", "disease_state", "interval_days")


# --- statistics -------------------------------------------------------------------------------
def chi2_sf(x: float, df: int) -> float:
    """P(chi-square with `df` degrees of freedom > x): the regularised upper gamma Q(df/2, x/2)."""
    a, z = df / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        while term > total * 1e-15:
            n += 1
            term *= z / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b, c, d = z + 1 - a, 1 / tiny, 1 / (z + 1 - a)
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def z_critical(alpha: float = ALPHA) -> float:
    """Two-sided normal critical value for `alpha`."""
    return NormalDist().inv_cdf(1 - alpha / 2)


def assert_chi2(observed, expected, label: str, alpha: float = ALPHA, min_expected: float = 5):
    """Pearson chi-square of counts against expected counts (same total); cells with expected
    below `min_expected` are pooled into one; cells with expected 0 must be observed 0."""
    observed = np.asarray(observed, dtype=float).ravel()
    expected = np.asarray(expected, dtype=float).ravel()
    impossible = expected <= 0
    assert observed[impossible].sum() == 0, f"{label}: observations where expected is 0"
    small = (expected < min_expected) & ~impossible
    o = np.append(observed[~small & ~impossible], observed[small].sum())
    e = np.append(expected[~small & ~impossible], expected[small].sum())
    keep = e > 0
    o, e = o[keep], e[keep]
    stat = float(((o - e) ** 2 / e).sum())
    df = len(o) - 1
    p = chi2_sf(stat, df)
    assert p > alpha, f"{label}: chi2={stat:.1f} df={df} p={p:.2e}; obs={o[:12]} exp={e[:12]}"
    return stat, df


def assert_z(observed: float, expected: float, variance: float, label: str, alpha: float = ALPHA):
    """|observed - expected| within the two-sided normal critical value for `alpha`."""
    z = (observed - expected) / math.sqrt(variance)
    assert abs(z) < z_critical(alpha), f"{label}: {observed:.4f} vs {expected:.4f}, z={z:.2f}"
    return z


def assert_sum_chi2(zs: list[float], label: str, alpha: float = ALPHA) -> None:
    """Sum of squared independent z-scores is chi-square with len(zs) degrees of freedom."""
    stat = float(sum(z * z for z in zs))
    p = chi2_sf(stat, len(zs))
    assert p > alpha, f"{label}: chi2={stat:.1f} df={len(zs)} p={p:.2e}; z={np.round(zs, 2)}"


def rounded_normal_pmf(mean: float, std: float, lo: int = 0, hi: int = 100) -> np.ndarray:
    """P(clip(round(N(mean, std)), lo, hi) = n) for n = lo..hi."""
    edges = np.arange(lo, hi + 2) - 0.5
    dist = NormalDist(mean, std)
    cdf = np.array([dist.cdf(e) for e in edges])
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)
