"""Fit free parameters to targets: bounded derivative-free search, then local sensitivity.

The objective is the weighted sum of squares ``sum(((sim - target) / s) ** 2)`` with
``s**2 = sigma**2 + se**2``: `sigma` the target's uncertainty (a 95 % CI's width / 3.92) and
`se` the Monte Carlo standard error of the simulated figure, so a noisy figure weighs less.
The search runs in scaled coordinates ``u = (x - lower) / (upper - lower)`` in [0, 1], so one
tolerance and one simplex size suit days and probabilities alike; scipy's Nelder-Mead (bounded
since scipy 1.7) or bounded Powell move in that box. Evaluations are cached by (rounded) x,
because Nelder-Mead revisits points and each evaluation is a simulation. A candidate the model
refuses (`AmdsimError`, e.g. a transition row that no longer sums to 1) scores `FAILED_ERROR`
and is recorded, not raised.

At the optimum: the Jacobian by central differences (2 % of each range), elasticities, the
condition number of the weighted, scaled Jacobian (large: the targets cannot tell some
parameters apart) and ``(J^T W J)^-1``, the approximate covariance of the fitted parameters.

Does not cover: what `evaluate` simulates (`engine.calibration.figures`), which parameters are
free (`engine.calibration.free_parameters`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize

from engine.errors import AmdsimError

__all__ = ["FAILED_ERROR", "EvaluationReport", "FitResult", "fit"]

FAILED_ERROR = 1e12  # objective of a candidate the model refuses: worse than any real fit
JACOBIAN_STEP = 0.02  # central-difference step, as a share of each parameter's range
SIMPLEX_SIZE = 0.10  # initial Nelder-Mead simplex edge, as a share of each range
X_TOLERANCE = 1e-3  # stop when the simplex spans < 0.1 % of every range ...
F_TOLERANCE = 1e-3  # ... and its errors differ by < 0.001 (the objective is a chi-square)
_CACHE_DECIMALS = 10  # x (as a share of its range) is rounded to this many decimals for the cache

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Method = Literal["nelder-mead", "powell"]


@dataclass(frozen=True)
class EvaluationReport:
    """One evaluation of the model, passed to `on_evaluation` (a progress bar reads it).

    ``evaluation`` counts model evaluations from 1 (cache hits are not evaluations);
    ``budget`` is the most there will be (the search's maximum plus the Jacobian's);
    ``failure`` is the message of a candidate the model refused ("" otherwise).
    """

    evaluation: int
    x: np.ndarray
    error: float
    best: float
    phase: Literal["search", "jacobian"]
    budget: int
    failure: str = ""


@dataclass(frozen=True)
class FitResult:
    """The optimum and what the targets say about it.

    Parameters
    ----------
    x, error
        Best parameters found (parameter units, integers rounded) and their objective.
    evaluations, iterations, seconds
        Model evaluations (search and Jacobian), optimiser iterations, wall time.
    simulated, ses
        Simulated figures at `x` and their standard errors.
    jacobian
        d(figure)/d(parameter) at `x`, targets x parameters, in their units.
    elasticities
        ``jacobian * x / simulated`` (relative change per relative change); NaN where a
        figure or parameter is 0.
    condition_number
        Of the weighted Jacobian in scaled coordinates: above ~1e3 some parameters (or
        combinations) are barely identified by these targets.
    covariance, standard_errors
        ``pinv(Jw^T Jw)`` (``Jw = J / s``) in parameter units and the square roots of its
        diagonal: the local, linearised uncertainty of the fitted parameters.
    history
        ``(evaluation, error, best so far)`` for every evaluation.
    converged, message
        Whether the optimiser met its tolerances within the budget, and what it said.
    failures
        ``(evaluation, x, message)`` of every candidate the model refused.
    method
        ``nelder-mead`` or ``powell``.
    """

    x: np.ndarray
    error: float
    evaluations: int
    iterations: int
    seconds: float
    simulated: np.ndarray
    ses: np.ndarray
    jacobian: np.ndarray
    elasticities: np.ndarray
    condition_number: float
    covariance: np.ndarray
    standard_errors: np.ndarray
    history: list[tuple[int, float, float]]
    converged: bool
    message: str
    failures: list[tuple[int, np.ndarray, str]] = field(default_factory=list)
    method: str = "nelder-mead"


class _BudgetSpent(Exception):
    """Raised inside the objective to stop the optimiser when the evaluations are spent."""


@dataclass(slots=True)
class _Point:
    """One evaluated point: its x, figures, standard errors, objective and failure."""

    x: np.ndarray
    simulated: np.ndarray
    ses: np.ndarray
    error: float
    failure: str


class _Problem:
    """The scaled problem: maps u to x, evaluates with a cache, keeps the record."""

    def __init__(
        self,
        evaluate: Evaluate,
        lower: np.ndarray,
        upper: np.ndarray,
        targets: np.ndarray,
        sigmas: np.ndarray,
        integer: np.ndarray,
        budget: int,
        on_evaluation: Callable[[EvaluationReport], None] | None,
    ) -> None:
        self.evaluate, self.lower, self.upper = evaluate, lower, upper
        self.span = upper - lower
        self.targets, self.sigmas, self.integer = targets, sigmas, integer
        self.budget, self.on_evaluation = budget, on_evaluation
        self.search_limit = budget
        self.cache: dict[tuple[float, ...], _Point] = {}
        self.best: _Point | None = None
        self.count = 0
        self.history: list[tuple[int, float, float]] = []
        self.failures: list[tuple[int, np.ndarray, str]] = []
        self.phase: Literal["search", "jacobian"] = "search"

    def to_x(self, u: np.ndarray) -> np.ndarray:
        """Parameter values for scaled `u`: clipped into the box, integers rounded inside it."""
        x = self.lower + np.clip(u, 0.0, 1.0) * self.span
        if self.integer.any():
            low = np.ceil(self.lower - 1e-9)
            high = np.floor(self.upper + 1e-9)
            x = np.where(self.integer, np.clip(np.round(x), low, high), x)
        return x

    def to_u(self, x: np.ndarray) -> np.ndarray:
        return (x - self.lower) / self.span

    def point(self, u: np.ndarray) -> _Point:
        """The evaluated point at `u` (from the cache when it was seen before)."""
        x = self.to_x(np.asarray(u, dtype=float))
        key = tuple(np.round(self.to_u(x), _CACHE_DECIMALS).tolist())
        if key in self.cache:
            return self.cache[key]
        if self.phase == "search" and self.count >= self.search_limit:
            raise _BudgetSpent
        self.count += 1
        point = self._evaluate(x)
        self.cache[key] = point
        if self.phase == "search" and (self.best is None or point.error < self.best.error):
            self.best = point
        best = self.best.error if self.best is not None else point.error
        self.history.append((self.count, point.error, best))
        if point.failure:
            self.failures.append((self.count, x.copy(), point.failure))
        if self.on_evaluation is not None:
            self.on_evaluation(
                EvaluationReport(
                    self.count, x.copy(), point.error, best, self.phase, self.budget, point.failure
                )
            )
        return point

    def objective(self, u: np.ndarray) -> float:
        return self.point(u).error

    def _evaluate(self, x: np.ndarray) -> _Point:
        m = len(self.targets)
        nothing = np.full(m, np.nan)
        try:
            simulated, ses = self.evaluate(x.copy())
        except AmdsimError as exc:
            return _Point(x, nothing, nothing, FAILED_ERROR, str(exc) or type(exc).__name__)
        simulated = np.asarray(simulated, dtype=float).reshape(-1)
        ses = np.asarray(ses, dtype=float).reshape(-1)
        if simulated.shape != (m,) or ses.shape != (m,):
            raise ValueError(
                f"evaluate returned {simulated.shape[0]} values and {ses.shape[0]} standard "
                f"errors for {m} targets"
            )
        if not (np.isfinite(simulated).all() and np.isfinite(ses).all()):
            return _Point(x, simulated, ses, FAILED_ERROR, "a simulated figure is not finite")
        scale = np.sqrt(self.sigmas**2 + ses**2)
        error = float(np.sum(((simulated - self.targets) / scale) ** 2))
        return _Point(x, simulated, ses, error, "")


def fit(
    evaluate: Evaluate,
    x0: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    target_values: Sequence[float] | np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    max_evaluations: int = 200,
    method: Method = "nelder-mead",
    integer: Sequence[bool] | np.ndarray | None = None,
    on_evaluation: Callable[[EvaluationReport], None] | None = None,
) -> FitResult:
    """Minimise the weighted squared distance of `evaluate(x)` from `target_values`.

    `evaluate(x)` returns the simulated figures and their standard errors, in target order.
    `max_evaluations` bounds the search; the Jacobian at the optimum takes up to ``2 k``
    more (k parameters). Bounds are respected: `evaluate` never sees x outside
    [lower, upper], and integer parameters (`integer`) are rounded before it sees them.
    Raises ValueError for inconsistent inputs (lengths, empty or reversed bounds, x0 outside
    them, sigmas not > 0); a candidate `evaluate` refuses with an `AmdsimError` is scored
    `FAILED_ERROR`, not raised.
    """
    started = time.perf_counter()
    x_start, low, high, targets, sig, whole = _checked(
        x0, lower, upper, target_values, sigmas, integer, max_evaluations, method
    )
    k = len(x_start)
    problem = _Problem(
        evaluate, low, high, targets, sig, whole, max_evaluations + 2 * k, on_evaluation
    )
    problem.search_limit = max_evaluations
    u0 = problem.to_u(problem.to_x(problem.to_u(x_start)))
    iterations = 0

    def count_iteration(*_: object) -> None:
        nonlocal iterations
        iterations += 1

    try:
        result = optimize.minimize(
            problem.objective,
            u0,
            method="Nelder-Mead" if method == "nelder-mead" else "Powell",
            bounds=[(0.0, 1.0)] * k,
            callback=count_iteration,
            options=_options(method, u0, max_evaluations),
        )
        converged = bool(result.success) and problem.best is not None
        message = str(result.message)
    except _BudgetSpent:
        converged = False
        message = f"stopped after {max_evaluations} evaluations (max_evaluations)"
    best = problem.best
    assert best is not None  # the first objective call evaluates u0
    problem.phase = "jacobian"
    if best.failure:
        jacobian = np.full((len(targets), k), np.nan)
        note = "every candidate was refused, so there is no optimum to describe"
    else:
        jacobian, note = _jacobian(problem, best)
    if note:
        message = f"{message}; {note}"
    return _summarise(problem, best, jacobian, iterations, converged, message, method, started)


def _checked(
    x0: Sequence[float] | np.ndarray,
    lower: Sequence[float] | np.ndarray,
    upper: Sequence[float] | np.ndarray,
    target_values: Sequence[float] | np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
    integer: Sequence[bool] | np.ndarray | None,
    max_evaluations: int,
    method: str,
) -> tuple[np.ndarray, ...]:
    """The inputs as float arrays, or ValueError saying which is inconsistent."""
    x = np.asarray(x0, dtype=float).reshape(-1)
    low = np.asarray(lower, dtype=float).reshape(-1)
    high = np.asarray(upper, dtype=float).reshape(-1)
    targets = np.asarray(target_values, dtype=float).reshape(-1)
    sig = np.asarray(sigmas, dtype=float).reshape(-1)
    whole = np.zeros(len(x), bool) if integer is None else np.asarray(integer, bool).reshape(-1)
    if method not in ("nelder-mead", "powell"):
        raise ValueError(f"method is {method!r}; expected 'nelder-mead' or 'powell'")
    if len(x) == 0 or not len(x) == len(low) == len(high) == len(whole):
        raise ValueError("x0, lower, upper and integer need one entry per parameter (>= 1)")
    if len(targets) == 0 or len(targets) != len(sig):
        raise ValueError("target_values and sigmas need one entry per target (>= 1)")
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (high > low).all()):
        raise ValueError("every parameter needs finite bounds with lower < upper")
    if not (np.isfinite(x).all() and (x >= low).all() and (x <= high).all()):
        raise ValueError("x0 must lie within [lower, upper]")
    if not (np.isfinite(sig).all() and (sig > 0).all() and np.isfinite(targets).all()):
        raise ValueError("targets must be finite and every sigma > 0")
    if max_evaluations < 1:
        raise ValueError("max_evaluations must be at least 1")
    return x, low, high, targets, sig, whole


def _options(method: str, u0: np.ndarray, max_evaluations: int) -> dict[str, object]:
    """scipy options; its own call limit is loose: `_Problem` counts real evaluations."""
    calls = 50 * max_evaluations  # cache hits are free and do not count against the budget
    if method == "powell":
        return {"maxfev": calls, "xtol": X_TOLERANCE, "ftol": F_TOLERANCE}
    simplex = [u0]
    for i in range(len(u0)):
        vertex = u0.copy()
        vertex[i] += SIMPLEX_SIZE if u0[i] + SIMPLEX_SIZE <= 1.0 else -SIMPLEX_SIZE
        simplex.append(vertex)
    return {
        "maxfev": calls,
        "xatol": X_TOLERANCE,
        "fatol": F_TOLERANCE,
        "initial_simplex": np.array(simplex),
    }


def _jacobian(problem: _Problem, best: _Point) -> tuple[np.ndarray, str]:
    """d(figure)/dx at `best` by central differences, one-sided at a bound or a failure.

    Each side steps `JACOBIAN_STEP` of the range (at least one unit for an integer), clipped
    to the bounds; the slope is taken between the points actually evaluated, so a clipped or
    rounded step is exact in x.
    """
    u = problem.to_u(best.x)
    k, m = len(u), len(problem.targets)
    jacobian = np.zeros((m, k))
    flat: list[int] = []
    for i in range(k):
        step = JACOBIAN_STEP
        if problem.integer[i]:  # at least one whole unit, or rounding hides the change
            step = max(step, 1.0 / problem.span[i])
        sides = [best]
        for direction in (1.0, -1.0):
            moved = u.copy()
            moved[i] = np.clip(u[i] + direction * step, 0.0, 1.0)  # shorter next to a bound
            if moved[i] != u[i]:
                point = problem.point(moved)
                if not point.failure and point.x[i] != best.x[i]:
                    sides.append(point)
        if len(sides) == 1:
            flat.append(i)
            continue
        ends = sides[1:] if len(sides) == 3 else [best, sides[1]]
        a, b = sorted(ends, key=lambda p: p.x[i])
        jacobian[:, i] = (b.simulated - a.simulated) / (b.x[i] - a.x[i])
    note = ""
    if flat:
        note = f"no derivative for parameter(s) {flat} (both neighbours refused or at a bound)"
    return jacobian, note


def _summarise(
    problem: _Problem,
    best: _Point,
    jacobian: np.ndarray,
    iterations: int,
    converged: bool,
    message: str,
    method: str,
    started: float,
) -> FitResult:
    """Elasticities, condition number and covariance at the optimum, in one `FitResult`."""
    scale = np.sqrt(problem.sigmas**2 + np.nan_to_num(best.ses) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        elasticities = jacobian * best.x[None, :] / best.simulated[:, None]
    elasticities[~np.isfinite(elasticities)] = np.nan
    weighted_scaled = jacobian * problem.span[None, :] / scale[:, None]
    k = len(best.x)
    if np.isfinite(weighted_scaled).all():
        condition = float(np.linalg.cond(weighted_scaled))
        # pinv in scaled coordinates, then back to units: its cut-off of small singular values
        # is relative, so it must not depend on whether a parameter is in days or probabilities.
        covariance_scaled = np.linalg.pinv(weighted_scaled.T @ weighted_scaled)
        covariance = covariance_scaled * np.outer(problem.span, problem.span)
    else:
        condition, covariance = float("inf"), np.full((k, k), np.nan)
    return FitResult(
        x=best.x.copy(),
        error=best.error,
        evaluations=problem.count,
        iterations=iterations,
        seconds=time.perf_counter() - started,
        simulated=best.simulated.copy(),
        ses=best.ses.copy(),
        jacobian=jacobian,
        elasticities=elasticities,
        condition_number=condition,
        covariance=covariance,
        standard_errors=np.sqrt(np.clip(np.diag(covariance), 0.0, None)),
        history=list(problem.history),
        converged=converged,
        message=message,
        failures=list(problem.failures),
        method=method,
    )
