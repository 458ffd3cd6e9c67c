"""amdsim's two extensions of the time-based model (docs/model.md 12): a per-patient gain
factor and an additive ceiling. Off by default they change nothing; on, they follow the spec
and the independent reference (tests/reference_model_v2.py).

Statistical checks use the family budget of test_model_v2_statistics.py: each fails falsely
with probability at most ALPHA = 1e-5 (split over its own checks).
"""

from __future__ import annotations

import math

import numpy as np

from tests.engine.model_v2_support import (
    ALPHA,
    BASELINES,
    DISCONTINUATION,
    STATES,
    assert_z,
    constant_rows,
    life_table,
    make_protocol,
    reference_columns,
    run_kernel,
    z_critical,
)

SEED = 20261203
P = "parameters"
V = "parameters.vision"
IMPROVE = "parameters.vision.vision_improvement"
# Everyone in an improvement phase every fortnight with a fixed rate of 1 letter: after 21
# fortnights the gain is exactly 21 x the patient's gain factor (no noise, no ceiling).
ALWAYS_IMPROVING = {
    "protocol_type": "fixed",
    f"{P}.disease_transitions.fortnightly_transitions": constant_rows("STABLE"),
    f"{P}.treatment_effect.treatment_response.responder_probability": 1.0,
    f"{IMPROVE}.improvement_probability": dict.fromkeys(STATES[1:], 1.0),
    f"{IMPROVE}.improvement_rate": {s: {"mean": 1.0, "std": 0.0} for s in STATES[1:]},
    f"{IMPROVE}.max_treatments_for_improvement": 1000,
    f"{V}.vision_ceilings.baseline_ceiling_factor": 3.0,
    "baseline_vision_distribution": {"type": "normal", "mean": 30.0, "std": 0.0},
}


def test_off_by_default_the_extensions_change_no_output_at_all():
    """patient_gain_cv 0 and ceiling_rule factor, written out, give the outputs of a protocol
    without the keys, column for column (the gain factor draws nothing when its CV is 0)."""
    changes = {
        f"{V}.vision_improvement.improvement_probability": {"STABLE": 0.3, "ACTIVE": 0.3},
        f"{V}.vision_improvement.improvement_rate": {
            s: {"mean": 1.0, "std": 0.5} for s in STATES[1:]
        },
        "baseline_vision_distribution": BASELINES["beta_with_threshold"],
    }
    plain, plain_visits = run_kernel(make_protocol(changes), 3000, 730, SEED)
    explicit = {
        **changes,
        f"{IMPROVE}.patient_gain_cv": 0.0,
        f"{V}.vision_ceilings.ceiling_rule": "factor",
        f"{V}.vision_ceilings.baseline_ceiling_gain": 7.0,
    }
    same, same_visits = run_kernel(make_protocol(explicit), 3000, 730, SEED)
    for name in plain:
        np.testing.assert_array_equal(plain[name], same[name], err_msg=name)
    for name in plain_visits:
        np.testing.assert_array_equal(plain_visits[name], same_visits[name], err_msg=name)


def test_gain_factor_is_lognormal_with_mean_1_and_the_stated_cv():
    """Final VA = 30 + 21 g (rounded): g has mean 1 (z, alpha/2) and log g has SD sigma =
    sqrt(ln(1 + cv^2)) (z on the sample variance of log g, its SE sigma^2 sqrt(2/(n-1)),
    alpha/2). 20k patients: a CV off by 10 % moves the variance by 20 %, z > 25."""
    cv = 0.6
    protocol = make_protocol({**ALWAYS_IMPROVING, f"{IMPROVE}.patient_gain_cv": cv})
    patients, _ = run_kernel(protocol, 20_000, 300, SEED + 1)
    g = (patients["final_vision"].astype(float) - 30.0) / 21.0
    sigma2 = math.log1p(cv * cv)
    # Rounding final VA to whole letters adds variance 1/12 letters^2 to 21 g.
    assert_z(g.mean(), 1.0, (math.expm1(sigma2) + 1 / 12 / 441) / len(g), "mean g", ALPHA / 2)
    logs = np.log(np.clip(g, 1e-3, None))
    n = len(logs)
    assert (
        abs(logs.var(ddof=1) - sigma2)
        < z_critical(ALPHA / 2) * sigma2 * math.sqrt(2 / (n - 1)) + 0.002
    )


def test_gain_factor_changes_no_other_draw():
    """The factor has its own random-number purpose: baselines, ages, sexes, responders and
    death days are the same with and without it (common random numbers)."""
    on = {
        **ALWAYS_IMPROVING,
        f"{IMPROVE}.patient_gain_cv": 0.8,
        f"{P}.mortality.mortality_rates": {"male": life_table(1.0), "female": life_table(1.0)},
    }
    off = {**on, f"{IMPROVE}.patient_gain_cv": 0.0}
    a, _ = run_kernel(make_protocol(on), 4000, 730, SEED + 2)
    b, _ = run_kernel(make_protocol(off), 4000, 730, SEED + 2)
    for name in ("baseline_vision", "age", "sex", "responder", "death_day"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["final_vision"], b["final_vision"])


def test_additive_ceiling_caps_true_va_at_baseline_plus_gain_then_the_absolute_ceiling():
    """With 21 letters of improvement for everyone and a gain ceiling of 12 letters, every
    final VA is round(min(baseline + 12, absolute)); the factor rule gives min(2 x baseline,
    absolute) instead. Exact per patient (no noise: measured baseline = round(true))."""
    spread = {"type": "uniform", "min": 20.0, "max": 80.0}
    common = {
        **ALWAYS_IMPROVING,
        "baseline_vision_distribution": spread,
        f"{V}.vision_ceilings.absolute_ceiling_default": 85,
        f"{V}.vision_ceilings.absolute_ceiling_high_baseline": 85,
        f"{V}.vision_ceilings.absolute_ceiling_low_baseline": 85,
    }
    gain = make_protocol(
        {
            **common,
            f"{V}.vision_ceilings.ceiling_rule": "gain",
            f"{V}.vision_ceilings.baseline_ceiling_gain": 12.0,
        }
    )
    patients, _ = run_kernel(gain, 3000, 300, SEED + 3)
    baseline = patients["baseline_vision"].astype(float)
    final = patients["final_vision"].astype(float)
    assert np.all(np.abs(final - np.minimum(baseline + 12, 85)) <= 1.0)
    assert np.mean(final - baseline) > 11  # the cap binds for (almost) everyone below 73
    factor = make_protocol({**common, f"{V}.vision_ceilings.baseline_ceiling_factor": 1.2})
    patients, _ = run_kernel(factor, 3000, 300, SEED + 3)
    baseline = patients["baseline_vision"].astype(float)
    final = patients["final_vision"].astype(float)
    assert np.all(np.abs(final - np.minimum(np.minimum(1.2 * baseline, baseline + 21), 85)) <= 1.5)


def test_kernel_and_reference_agree_with_both_extensions_on():
    """T&E with every rule on plus a gain factor (CV 0.7) and an additive ceiling: kernel
    (20k) and reference (2,500, its own random numbers) agree on mean final VA, its SD, and
    the share of patients whose final true VA is 15+ letters above baseline. Two-sample z per statistic
    (3 checks, alpha/3 each); detects the factor ignored (SD of final VA falls by ~3 letters)
    with probability > 0.99."""
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
            f"{V}.vision_measurement.measurement_noise_std": 2.5,
            f"{IMPROVE}.improvement_probability": {"STABLE": 0.3, "ACTIVE": 0.4, "HIGHLY_ACTIVE": 0.1},
            f"{IMPROVE}.improvement_rate": {s: {"mean": 2.0, "std": 1.0} for s in STATES[1:]},
            f"{IMPROVE}.patient_gain_cv": 0.7,
            f"{V}.vision_ceilings.ceiling_rule": "gain",
            f"{V}.vision_ceilings.baseline_ceiling_gain": 25.0,
            f"{V}.vision_ceilings.absolute_ceiling_default": 85,
        }
    )  # fmt: skip
    kernel, _ = run_kernel(protocol, 20_000, 365, SEED + 4)
    reference, _ = reference_columns(protocol, 2_500, 365, SEED + 4)

    def gained(c):
        return ((c["final_vision"].astype(float) - c["baseline_vision"]) >= 15).astype(float)

    for name, stat in {
        "final VA": lambda c: c["final_vision"].astype(float),
        "final VA 15+ above baseline": gained,
    }.items():
        a, b = stat(kernel), stat(reference)
        variance = a.var() / len(a) + b.var() / len(b)
        assert_z(a.mean(), b.mean(), variance, f"kernel vs reference: {name}", ALPHA / 3)
    a, b = (c["final_vision"].astype(float) for c in (kernel, reference))
    # SD: the sample variance's SE is about sqrt((m4 - s^4) / n) for each sample.
    se = math.sqrt(sum((np.mean((x - x.mean()) ** 4) - x.var() ** 2) / len(x) for x in (a, b)))
    assert_z(a.var(), b.var(), se * se, "kernel vs reference: variance of final VA", ALPHA / 3)


def _treat_and_extend(loss: int | None) -> dict:
    return {
        "protocol_type": "treat_and_extend",
        "loading_dose_injections": 3,
        "min_interval_days": 56,
        "max_interval_days": 112,
        "extension_days": 14,
        "shortening_days": 14,
        "shorten_on_vision_loss_letters": loss,
        "baseline_vision_distribution": {"type": "normal", "mean": 55.0, "std": 10.0},
        f"{V}.vision_measurement.measurement_noise_std": 4.0,
        f"{V}.vision_decline_fortnightly": {
            s: {"untreated": {"mean": -0.5, "std": 1.0}, "treated": {"mean": 0.0, "std": 1.0}}
            for s in STATES
        },
    }


def test_vision_loss_since_the_previous_visit_shortens_a_treat_and_extend_interval():
    """Every interval after loading, checked exactly against section 5: STABLE extends unless
    the measured VA fell by 5 letters or more since the previous visit, which shortens as
    ACTIVE does; ACTIVE shortens; HIGHLY_ACTIVE resets; clamped to [56, 112]. The rule fires
    on a fair share of STABLE visits (noise SD 4 letters), so the check is not vacuous."""
    _, visits = run_kernel(make_protocol(_treat_and_extend(5)), 3000, 730, SEED + 5)
    pid, n, state = visits["patient_id"], visits["visit"], visits["disease_state"]
    vision, gap = visits["vision"].astype(int), visits["interval_days"].astype(int)
    fired = checked = 0
    for row in range(1, len(pid)):
        if pid[row] != pid[row - 1] or n[row] < 2 or gap[row] < 0:
            continue
        previous_gap = gap[row - 1]
        s = int(state[row])
        lost = vision[row - 1] - vision[row] >= 5
        if s in (0, 1) and lost:
            fired += s == 1
            s = 2
        step = {0: 0, 1: 14, 2: -14}.get(s)
        expected = 56 if step is None else min(112, max(56, previous_gap + step))
        assert gap[row] == expected, (row, s, previous_gap, gap[row])
        checked += 1
    assert checked > 10_000 and fired > 500


def test_kernel_and_reference_agree_on_injections_with_the_vision_loss_rule():
    """Mean injections and visits over 2 years, kernel (20k) vs reference (2,500): z per
    statistic (2 checks, alpha/2 each). The rule adds about 0.9 injections here (5.9 to 6.8),
    which the test would detect at z > 10 if either side ignored it."""
    protocol = make_protocol(_treat_and_extend(5))
    kernel, _ = run_kernel(protocol, 20_000, 730, SEED + 6)
    reference, _ = reference_columns(protocol, 2_500, 730, SEED + 6)
    for name in ("injections", "visits"):
        a, b = kernel[name].astype(float), reference[name].astype(float)
        variance = a.var() / len(a) + b.var() / len(b)
        assert_z(a.mean(), b.mean(), variance, f"kernel vs reference: {name}", ALPHA / 2)
    without, _ = run_kernel(make_protocol(_treat_and_extend(None)), 20_000, 730, SEED + 6)
    assert kernel["injections"].mean() > without["injections"].mean() + 0.2
