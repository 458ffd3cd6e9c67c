"""The fit: recovers known parameters, stays in bounds, rounds integers, survives refusals, and
its Jacobian, condition number and covariance match what a linear model says they must be."""

from __future__ import annotations

import numpy as np
import pytest

from engine.calibration.fit import FAILED_ERROR, EvaluationReport, fit
from engine.errors import ParameterError

# A smooth, noiseless, nonlinear toy: 4 parameters on unlike scales, 6 figures.
LOWER = np.array([0.0, 1.0, -1.0, 0.0])
UPPER = np.array([2.0, 3.0, 1.0, 10.0])
TRUE = np.array([1.2, 1.8, 0.3, 6.0])
START = TRUE + np.array([0.3, -0.3, 0.25, -1.5])  # 10-15 % of each range away
SIGMAS = np.full(6, 0.05)
# The optimiser stops when the simplex spans < 0.1 % of each range and its errors differ by
# < 0.001; the toy is well conditioned (condition number ~4), so the optimum lies within a few
# tenths of a percent of each range of the truth. 1 % leaves a margin without hiding a bad fit.
TOLERANCE = 0.01


def toy(x: np.ndarray) -> np.ndarray:
    a, b, c, d = x
    return np.array(
        [a * b, b + c**2, np.exp(0.2 * d) + a, a + b + c + d / 10, np.sin(c) + d / 5, a**2 - d / 10]
    )


def noiseless(model):
    return lambda x: (model(x), np.zeros(len(model(x))))


@pytest.mark.parametrize("method", ["nelder-mead", "powell"])
def test_both_methods_recover_the_toy_parameters_from_a_perturbed_start(method):
    result = fit(noiseless(toy), START, LOWER, UPPER, toy(TRUE), SIGMAS, 600, method=method)
    assert result.converged, result.message
    assert np.all(np.abs(result.x - TRUE) / (UPPER - LOWER) < TOLERANCE)
    assert result.error < 0.01
    assert result.method == method
    assert result.evaluations <= 600 + 2 * 4
    np.testing.assert_allclose(result.simulated, toy(result.x))
    assert result.jacobian.shape == (6, 4)
    assert result.covariance.shape == (4, 4) and result.standard_errors.shape == (4,)
    assert np.all(np.diff([best for _, _, best in result.history]) <= 0)


def test_evaluate_never_sees_a_value_outside_the_bounds_even_when_the_optimum_is_at_one():
    seen = []

    def evaluate(x):
        seen.append(x.copy())
        return toy(x), np.zeros(6)

    # Targets from a point beyond the upper bound of the first parameter pull it to the bound.
    beyond = np.array([2.6, 1.8, 0.3, 6.0])
    result = fit(evaluate, START, LOWER, UPPER, toy(beyond), SIGMAS, 400)
    seen = np.array(seen)
    assert np.all(seen >= LOWER) and np.all(seen <= UPPER)
    assert result.x[0] == pytest.approx(UPPER[0], abs=0.01)
    assert np.isfinite(result.jacobian).all()  # one-sided at the bound


def test_integer_parameters_are_rounded_before_evaluate_and_fitted_to_a_whole_number():
    seen = []

    def evaluate(x):
        seen.append(x.copy())
        return np.array([x[0] / 10, x[1], x[0] * x[1] / 10]), np.zeros(3)

    true = np.array([37.0, 0.4])
    targets = np.array([3.7, 0.4, 1.48])
    result = fit(
        evaluate, [30.0, 0.5], [0, 0], [100, 1], targets, [0.05] * 3, 300, integer=[True, False]
    )
    seen = np.array(seen)
    assert np.all(seen[:, 0] == np.round(seen[:, 0]))
    assert result.x[0] == true[0]
    assert result.x[1] == pytest.approx(true[1], abs=0.01)
    assert result.jacobian[0, 0] == pytest.approx(0.1)  # a step of whole units


def test_covariance_and_jacobian_match_the_analytic_values_for_a_linear_model():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 3))
    sigmas = np.array([0.1, 0.2, 0.5, 0.3, 1.0])
    true = np.array([0.5, -0.2, 0.8])
    result = fit(
        lambda x: (a @ x, np.zeros(5)), np.zeros(3), [-1] * 3, [1] * 3, a @ true, sigmas, 400
    )
    np.testing.assert_allclose(result.jacobian, a, atol=1e-9)
    weights = np.diag(1 / sigmas**2)
    expected = np.linalg.inv(a.T @ weights @ a)
    np.testing.assert_allclose(result.covariance, expected, rtol=1e-6)
    np.testing.assert_allclose(result.standard_errors, np.sqrt(np.diag(expected)), rtol=1e-6)
    np.testing.assert_allclose(result.x, true, atol=0.01)
    # Elasticities: dy/dx * x / y.
    np.testing.assert_allclose(
        result.elasticities, a * result.x[None, :] / (a @ result.x)[:, None], rtol=1e-6
    )


def test_the_monte_carlo_standard_error_widens_each_targets_tolerance():
    def evaluate(x):
        return np.array([x[0], x[0]]), np.array([0.0, 0.4])

    reports: list[EvaluationReport] = []
    fit(evaluate, [1.0], [0], [2], [2.0, 2.0], [0.3, 0.3], 1, on_evaluation=reports.append)
    first = reports[0]
    assert first.evaluation == 1 and first.phase == "search"
    assert first.error == pytest.approx(1 / 0.09 + 1 / (0.09 + 0.16))


def test_two_collinear_parameters_give_a_large_condition_number():
    def collinear(x):
        return np.array([x[0] + x[1], 2 * (x[0] + x[1]), x[0] + x[1] + 1]), np.zeros(3)

    def separate(x):
        return np.array([x[0] + x[1], x[0] - x[1], x[0]]), np.zeros(3)

    targets = np.array([1.0, 2.0, 2.0])
    bad = fit(collinear, [0.3, 0.3], [0, 0], [1, 1], targets, [0.1] * 3, 100)
    good = fit(separate, [0.3, 0.3], [0, 0], [1, 1], [1.0, 0.0, 0.5], [0.1] * 3, 100)
    assert bad.condition_number > 1e8
    assert good.condition_number < 10


def test_a_refused_candidate_counts_as_a_large_error_and_is_recorded():
    def evaluate(x):
        if x[0] > 1.5:
            raise ParameterError("a transition row would sum above 1")
        return toy(x), np.zeros(6)

    # The truth sits next to the refused region, so the search steps into it.
    true = np.array([1.45, 1.8, 0.3, 6.0])
    result = fit(evaluate, START, LOWER, UPPER, toy(true), SIGMAS, 600)
    assert result.failures, "the search never tried the refused region"
    evaluation, x, message = result.failures[0]
    assert x[0] > 1.5 and message == "a transition row would sum above 1"
    assert any(error == FAILED_ERROR for n, error, _ in result.history if n == evaluation)
    assert result.x[0] <= 1.5 and result.error < FAILED_ERROR
    assert np.isfinite(result.jacobian).all()


def test_evaluations_are_cached_and_reported_with_their_phase():
    calls = []

    def evaluate(x):
        calls.append(tuple(x))
        return toy(x), np.zeros(6)

    reports: list[EvaluationReport] = []
    result = fit(
        evaluate, START, LOWER, UPPER, toy(TRUE), SIGMAS, 300, on_evaluation=reports.append
    )
    assert len(calls) == len(set(calls)) == result.evaluations == len(reports)
    assert [r.evaluation for r in reports] == list(range(1, len(reports) + 1))
    phases = [r.phase for r in reports]
    assert phases[0] == "search" and phases[-1] == "jacobian"
    assert phases == sorted(phases, key=lambda p: p == "jacobian")
    assert all(r.budget == 300 + 8 for r in reports)
    assert [(r.evaluation, r.error, r.best) for r in reports] == result.history


def test_the_search_stops_at_max_evaluations_and_says_so():
    calls = []

    def evaluate(x):
        calls.append(x)
        return toy(x), np.zeros(6)

    result = fit(evaluate, START, LOWER, UPPER, toy(TRUE), SIGMAS, 20)
    assert len(calls) <= 20 + 2 * 4
    assert not result.converged and "max_evaluations" in result.message
    assert result.error == min(error for _, error, _ in result.history[:20])


@pytest.mark.parametrize(
    ("x0", "lower", "upper", "sigmas"),
    [
        ([0.5], [0], [1, 2], [1.0]),  # lengths differ
        ([0.5], [1], [0], [1.0]),  # reversed bounds
        ([1.5], [0], [1], [1.0]),  # start outside
        ([0.5], [0], [1], [0.0]),  # sigma 0
    ],
)
def test_inconsistent_inputs_raise_value_error(x0, lower, upper, sigmas):
    with pytest.raises(ValueError):
        fit(lambda x: (x, np.zeros(1)), x0, lower, upper, [0.5], sigmas, 10)


def test_the_jacobian_is_one_sided_at_a_bound_and_exact_for_a_linear_model():
    a = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    # Targets beyond the box push both parameters to a bound.
    result = fit(
        lambda x: (a @ x, np.zeros(3)), [0.5, 0.5], [0, 0], [1, 1], [9, 0, 9], [1] * 3, 200
    )
    assert result.x[0] == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(result.jacobian, a, atol=1e-9)
