"""ICER, Fieller interval, net monetary benefit and dominance against hand calculations."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from engine.economics.cost_effectiveness import (
    DOMINANCE_CLASSES,
    FiellerInterval,
    dominance,
    fieller_interval,
    icer,
    net_monetary_benefit,
)

# The confidence level whose normal quantile is exactly 2; with n = 4, z^2 / n = 1, so the
# Fieller quadratic's coefficients are whole numbers that can be checked by hand.
LEVEL_Z2 = 2 * NormalDist().cdf(2.0) - 1


def test_icer_is_the_ratio_of_mean_differences_and_nan_without_a_qaly_difference():
    assert icer(3000.0, 0.1) == pytest.approx(30_000.0)
    assert math.isnan(icer(3000.0, 0.0))
    assert math.isnan(icer(0.0, 0.0))


def test_fieller_bounded_matches_the_hand_solved_quadratic():
    # a = 6, b = 2, var_dc = 16, var_dq = 3, cov = 6, z^2/n = 1:
    # A = 4 - 3 = 1, B = -2 (12 - 6) = -12, C = 36 - 16 = 20: R^2 - 12 R + 20 = (R-2)(R-10).
    interval = fieller_interval(6.0, 2.0, 16.0, 3.0, 6.0, 4, level=LEVEL_Z2)
    assert interval.kind == "bounded"
    assert interval.low == pytest.approx(2.0) and interval.high == pytest.approx(10.0)
    assert interval.low <= icer(6.0, 2.0) <= interval.high


def test_fieller_exclusive_when_the_qaly_difference_is_not_significant():
    # a = 3, b = 1, var_dc = 0, var_dq = 4, cov = 0: A = 1 - 4 = -3, B = -6, C = 9:
    # -3R^2 - 6R + 9 <= 0  <=>  (R + 3)(R - 1) >= 0  <=>  R <= -3 or R >= 1.
    interval = fieller_interval(3.0, 1.0, 0.0, 4.0, 0.0, 4, level=LEVEL_Z2)
    assert interval == FiellerInterval(pytest.approx(-3.0), pytest.approx(1.0), "exclusive")


def test_fieller_unbounded_when_the_discriminant_is_negative():
    # a = 3, b = 1, var_dc = 16, var_dq = 4: A = -3, B = -6, C = -7; B^2 - 4AC = 36 - 84 < 0.
    interval = fieller_interval(3.0, 1.0, 16.0, 4.0, 0.0, 4, level=LEVEL_Z2)
    assert interval.kind == "unbounded"
    assert math.isnan(interval.low) and math.isnan(interval.high)


def test_fieller_default_level_uses_the_95_percent_normal_quantile():
    z2 = NormalDist().inv_cdf(0.975) ** 2
    a, b, vc, vq, c, n = 500.0, 0.05, 4.0e6, 0.25, 100.0, 1000
    big_a, big_b, big_c = b * b - z2 * vq / n, -2 * (a * b - z2 * c / n), a * a - z2 * vc / n
    root = math.sqrt(big_b * big_b - 4 * big_a * big_c)
    expected = sorted(((-big_b - root) / (2 * big_a), (-big_b + root) / (2 * big_a)))
    interval = fieller_interval(a, b, vc, vq, c, n)
    assert interval.kind == "bounded"
    assert [interval.low, interval.high] == pytest.approx(expected, rel=1e-9)


def test_fieller_degenerate_inputs_give_an_answer_not_an_exception():
    assert fieller_interval(100.0, 0.5, 0.0, 0.0, 0.0, 50) == FiellerInterval(
        200.0, 200.0, "bounded"
    )
    assert fieller_interval(100.0, 0.0, 0.0, 0.0, 0.0, 50).kind == "unbounded"
    assert fieller_interval(100.0, 0.5, 10.0, 1.0, 0.0, 1).kind == "unbounded"
    assert fieller_interval(100.0, 0.5, math.nan, 1.0, 0.0, 50).kind == "unbounded"


def test_fieller_covers_the_true_ratio_about_95_percent_of_the_time():
    """Bivariate normal paired differences, 400 replications of 2,000 patients.

    With 400 replications the coverage's standard error is sqrt(0.95 x 0.05 / 400) = 0.011,
    so a correct interval lands in [0.917, 0.983] (3 standard errors) all but 0.3% of seeds.
    """
    seed = 20261202
    rng = np.random.default_rng(seed)
    true_dc, true_dq = 400.0, 0.04
    sd_dc, sd_dq, rho = 2000.0, 0.5, 0.3
    cov_matrix = [[sd_dc**2, rho * sd_dc * sd_dq], [rho * sd_dc * sd_dq, sd_dq**2]]
    n, replications, covered = 2000, 400, 0
    for _ in range(replications):
        sample = rng.multivariate_normal([true_dc, true_dq], cov_matrix, size=n)
        moments = np.cov(sample, rowvar=False, ddof=1)
        mean_dc, mean_dq = sample.mean(axis=0)
        interval = fieller_interval(
            mean_dc, mean_dq, moments[0, 0], moments[1, 1], moments[0, 1], n
        )
        ratio = true_dc / true_dq
        if interval.kind == "bounded":
            covered += interval.low <= ratio <= interval.high
        elif interval.kind == "exclusive":
            covered += ratio <= interval.low or ratio >= interval.high
        else:
            covered += 1
    coverage = covered / replications
    assert 0.917 <= coverage <= 0.983, f"coverage {coverage:.3f} (seed {seed})"


def test_net_monetary_benefit_matches_the_hand_calculation():
    # threshold 20,000: mean = 20,000 x 0.05 - 600 = 400; variance per patient =
    # 20,000^2 x 0.04 + 250,000 - 2 x 20,000 x 50 = 16,000,000 + 250,000 - 2,000,000
    # = 14,250,000; / n = 1,000 -> 14,250.
    mean, low, high = net_monetary_benefit(600.0, 0.05, 250_000.0, 0.04, 50.0, 1000, 20_000.0)
    half = NormalDist().inv_cdf(0.975) * math.sqrt(14_250.0)
    assert mean == pytest.approx(400.0)
    assert (low, high) == (pytest.approx(400.0 - half), pytest.approx(400.0 + half))


def test_net_monetary_benefit_with_too_few_patients_has_no_interval():
    mean, low, high = net_monetary_benefit(600.0, 0.05, 1.0, 1.0, 0.0, 1, 20_000.0)
    assert mean == pytest.approx(400.0) and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize(
    ("mean_dc", "mean_dq", "expected"),
    [
        (0.0, 0.0, "no difference"),
        (-100.0, 0.1, "dominant"),
        (0.0, 0.1, "dominant"),
        (-100.0, 0.0, "dominant"),
        (100.0, -0.1, "dominated"),
        (0.0, -0.1, "dominated"),
        (100.0, 0.0, "dominated"),
        (100.0, 0.1, "more costly, more effective"),
        (-100.0, -0.1, "less costly, less effective"),
    ],
)
def test_dominance_places_the_second_arm_on_the_plane(mean_dc, mean_dq, expected):
    assert dominance(mean_dc, mean_dq) == expected
    assert expected in DOMINANCE_CLASSES


def test_dominance_refuses_nan():
    with pytest.raises(ValueError, match="must be numbers"):
        dominance(math.nan, 0.1)
