"""Fit named parameters of one shared parameter set to a targets file, and write the result.

Every protocol the calibration targets name must run on the same parameter set (one set per
drug, fitted jointly: bundled protocols then differ only in regimen and population, so a
comparison between them measures the regimen). A candidate is applied to that set once and
the set is given to every protocol; each evaluation simulates each protocol with the same seed
(common random numbers). Validation targets are never fitted; they are evaluated at the start
and at the optimum for the report only.

`write_calibration` writes the six parameter files into a folder (fitted ones edited in place,
comments kept, with a header), and ``calibration.json``: what was fitted, the targets file's
SHA-256, seed, cohort, the fitted values with their approximate covariance (kept for the
probabilistic sensitivity analysis), the Jacobian, elasticities and condition number.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from engine.calibration.check import load_target_protocols
from engine.calibration.figures import Estimate, Progress, evaluate_targets
from engine.calibration.fit import EvaluationReport, FitResult, Method, fit
from engine.calibration.fitted_files import edited_text, format_number, with_header
from engine.calibration.free_parameters import (
    FreeParameter,
    describe,
    get_value,
    parse_free,
    with_values,
)
from engine.calibration.targets import Target, TargetsFile, target_protocol_path
from engine.errors import AmdsimError, ParameterError, TargetsError
from engine.model.v2.schema import TimeBasedParameters, TimeBasedProtocol

__all__ = ["Calibration", "CalibrationProblem", "calibrate", "prepare", "write_calibration"]

Z_95 = 1.959964
RESULT_FILE = "calibration.json"


@dataclass(frozen=True)
class CalibrationProblem:
    """Targets, protocols and free parameters, ready to evaluate candidates."""

    targets_path: Path
    targets: list[Target]  # calibration targets only
    validation: list[Target]
    protocols: dict[str, TimeBasedProtocol]
    free: list[FreeParameter]
    start: np.ndarray
    patients: int
    seed: int

    @property
    def sigmas(self) -> np.ndarray:
        """Each target's tolerance: its 95 % CI half-width as one standard deviation."""
        return np.array([(t.ci[1] - t.ci[0]) / (2 * Z_95) for t in self.targets])

    def parameters_at(self, x: Sequence[float]) -> TimeBasedParameters:
        """The shared parameter set with the free parameters at `x` (validated)."""
        first = next(iter(self.protocols.values()))
        changed = with_values(first, self.free, list(x))
        assert changed.parameters is not None
        return changed.parameters

    def protocols_at(self, x: Sequence[float]) -> dict[str, TimeBasedProtocol]:
        """Every protocol with the shared parameter set at `x`."""
        parameters = self.parameters_at(x)
        return {
            name: msgspec.structs.replace(protocol, parameters=parameters)
            for name, protocol in self.protocols.items()
        }

    def estimates(
        self,
        x: Sequence[float],
        targets: Sequence[Target] | None = None,
        progress: Progress | None = None,
    ) -> list[Estimate]:
        """The simulated value of each target (calibration targets by default) at `x`."""
        chosen = self.targets if targets is None else list(targets)
        return evaluate_targets(chosen, self.protocols_at(x), self.patients, self.seed, progress)

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the fit calls: simulated values and their standard errors at `x`."""
        estimates = self.estimates(x)
        return (
            np.array([e.value for e in estimates]),
            np.array([e.se for e in estimates]),
        )


@dataclass(frozen=True)
class Calibration:
    """A finished fit with the figures before and after."""

    problem: CalibrationProblem
    result: FitResult
    start_estimates: list[Estimate]
    fitted_estimates: list[Estimate]
    start_validation: list[Estimate]
    fitted_validation: list[Estimate]
    start_error: float


def prepare(
    targets_path: Path,
    targets_file: TargetsFile,
    free_text: str,
    *,
    patients: int | None = None,
    seed: int | None = None,
) -> CalibrationProblem:
    """Load the protocols, check they share one parameter set, parse the free parameters."""
    calibration = [t for t in targets_file.targets if t.role == "calibration"]
    if not calibration:
        raise TargetsError(str(targets_path), "$.targets", "has no calibration target to fit")
    validation = [t for t in targets_file.targets if t.role == "validation"]
    protocols = load_target_protocols(targets_path, calibration + validation)
    fitted = {name: protocols[name] for name in dict.fromkeys(t.protocol for t in calibration)}
    _require_one_parameter_set(targets_path, fitted)
    free = parse_free(free_text, next(iter(fitted.values())))
    first = next(iter(fitted.values()))
    start = np.array([get_value(first, parameter) for parameter in free])
    for parameter, value in zip(free, start, strict=True):
        if not parameter.lower <= value <= parameter.upper:
            raise ParameterError(
                f"free parameter {parameter.path} starts at {value:g}, outside its bounds "
                f"{parameter.lower:g} to {parameter.upper:g}; widen the bounds or change the "
                "starting value in the parameter file"
            )
    return CalibrationProblem(
        targets_path=targets_path,
        targets=calibration,
        validation=validation,
        protocols=protocols,
        free=free,
        start=start,
        patients=patients if patients is not None else targets_file.patients,
        seed=seed if seed is not None else targets_file.seed,
    )


def calibrate(
    problem: CalibrationProblem,
    *,
    max_evaluations: int = 200,
    method: Method = "nelder-mead",
    on_evaluation: Callable[[EvaluationReport], None] | None = None,
) -> Calibration:
    """Fit the free parameters to the calibration targets; figures at the start and optimum."""
    start_estimates = problem.estimates(problem.start)
    values = np.array([t.value for t in problem.targets])
    start_error = _error(start_estimates, values, problem.sigmas)
    result = fit(
        problem.evaluate,
        problem.start,
        [p.lower for p in problem.free],
        [p.upper for p in problem.free],
        values,
        problem.sigmas,
        max_evaluations=max_evaluations,
        method=method,
        integer=[p.integer for p in problem.free],
        on_evaluation=on_evaluation,
    )
    fitted_estimates = problem.estimates(result.x)
    validation = problem.validation
    return Calibration(
        problem=problem,
        result=result,
        start_estimates=start_estimates,
        fitted_estimates=fitted_estimates,
        start_validation=problem.estimates(problem.start, validation) if validation else [],
        fitted_validation=problem.estimates(result.x, validation) if validation else [],
        start_error=start_error,
    )


def write_calibration(calibration: Calibration, folder: Path, targets_sha256: str) -> list[Path]:
    """Write the fitted parameter files and calibration.json into `folder` (made if missing)."""
    problem, result = calibration.problem, calibration.result
    folder.mkdir(parents=True, exist_ok=True)
    first_name, first = next(iter(problem.protocols.items()))
    protocol_folder = target_protocol_path(
        problem.targets_path, _target_of(problem, first_name)
    ).parent
    header = _header(calibration, targets_sha256)
    changes = _changes_by_file(problem, result.x)
    written = []
    for record in first.files:
        source = (protocol_folder / record.path).resolve()
        destination = folder / Path(record.path).name
        text = record.text
        if record.role in changes:
            edited = edited_text(text, changes[record.role])
            if edited is None:
                raise AmdsimError(
                    f"{record.path}: the fitted values could not be written into the file's "
                    "layout; nothing was written"
                )
            text = with_header(edited, header)
        if destination.resolve() != source or record.role in changes:
            _write(destination, text)
        written.append(destination)
    result_path = folder / RESULT_FILE
    _write(result_path, json.dumps(_document(calibration, targets_sha256), indent=2) + "\n")
    written.append(result_path)
    return written


def targets_digest(path: Path) -> str:
    """SHA-256 of the targets file's bytes, recorded so a fit names exactly what it fitted to."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- helpers ---------------------------------------------------------------------------------
def _require_one_parameter_set(targets_path: Path, protocols: dict[str, TimeBasedProtocol]) -> None:
    names = list(protocols)
    first = protocols[names[0]]
    for name in names[1:]:
        if protocols[name].parameters != first.parameters:
            raise TargetsError(
                str(targets_path),
                None,
                f"{names[0]} and {name} run on different parameters; a calibration fits one "
                "parameter set shared by every protocol its targets name (point both at the "
                "same parameter files)",
            )


def _target_of(problem: CalibrationProblem, name: str) -> Target:
    return next(t for t in problem.targets + problem.validation if t.protocol == name)


def _changes_by_file(
    problem: CalibrationProblem, x: np.ndarray
) -> dict[str, dict[tuple[str, ...], str]]:
    """Per parameter file (role), the key paths to rewrite and their new numbers as text."""
    parameters = msgspec.to_builtins(problem.parameters_at(x))
    changes: dict[str, dict[tuple[str, ...], str]] = {}
    for parameter in problem.free:
        role, *keys = parameter.path.split(".")
        paths = [tuple(keys)]
        if role == "disease_transitions" and len(keys) == 3:  # its row's diagonal moved too
            paths.append((keys[0], keys[1], keys[1]))
        for path in paths:
            node = parameters[role]
            for key in path:
                node = node[key] if key in node else node[int(key)]
            changes.setdefault(role, {})[path] = format_number(float(node), parameter.integer)
    return changes


def _error(estimates: Sequence[Estimate], values: np.ndarray, sigmas: np.ndarray) -> float:
    simulated = np.array([e.value for e in estimates])
    ses = np.array([e.se for e in estimates])
    return float(np.sum((simulated - values) ** 2 / (sigmas**2 + ses**2)))


def _header(calibration: Calibration, targets_sha256: str) -> list[str]:
    problem, result = calibration.problem, calibration.result
    today = datetime.date.today().isoformat()
    lines = [
        f"{today}: {len(problem.free)} parameters fitted jointly to "
        f"{len(problem.targets)} calibration targets of {problem.targets_path.name}",
        f"(SHA-256 {targets_sha256[:16]}...), {problem.patients:,} patients per protocol, "
        f"seed {problem.seed}; {result.method}, {result.evaluations} evaluations;",
        f"weighted squared error {calibration.start_error:.2f} at the start, "
        f"{result.error:.2f} fitted. Fitted values (approximate SE):",
    ]
    for parameter, value, se in zip(problem.free, result.x, result.standard_errors, strict=True):
        shown = format_number(float(value), parameter.integer)
        lines.append(f"  {parameter.path} = {shown} ({_se_text(se)})")
    lines.append(
        "Everything else is as written below. See calibration.json and docs/validation.md."
    )
    return lines


def _se_text(se: float) -> str:
    return f"SE {se:.2g}" if math.isfinite(se) else "SE not identified"


def _document(calibration: Calibration, targets_sha256: str) -> dict[str, object]:
    problem, result = calibration.problem, calibration.result

    def figures(targets: Sequence[Target], start: Sequence[Estimate], end: Sequence[Estimate]):
        return [
            {
                "id": t.id,
                "target": t.value,
                "ci": list(t.ci),
                "start": _finite(s.value),
                "fitted": _finite(e.value),
                "se": _finite(e.se),
            }
            for t, s, e in zip(targets, start, end, strict=True)
        ]

    return {
        "targets_file": problem.targets_path.name,
        "targets_sha256": targets_sha256,
        "date": datetime.date.today().isoformat(),
        "patients": problem.patients,
        "seed": problem.seed,
        "method": result.method,
        "evaluations": result.evaluations,
        "iterations": result.iterations,
        "seconds": round(result.seconds, 1),
        "converged": result.converged,
        "message": result.message,
        "start_error": calibration.start_error,
        "error": result.error,
        "condition_number": _finite(result.condition_number),
        "parameters": [
            {
                "path": p.path,
                "label": describe(p),
                "lower": p.lower,
                "upper": p.upper,
                "start": float(s),
                "fitted": float(x),
                "se": _finite(float(se)),
            }
            for p, s, x, se in zip(
                problem.free, problem.start, result.x, result.standard_errors, strict=True
            )
        ],
        "covariance": [[_finite(float(v)) for v in row] for row in result.covariance],
        "jacobian": [[_finite(float(v)) for v in row] for row in result.jacobian],
        "elasticities": [[_finite(float(v)) for v in row] for row in result.elasticities],
        "calibration_targets": figures(
            problem.targets, calibration.start_estimates, calibration.fitted_estimates
        ),
        "validation_targets": figures(
            problem.validation, calibration.start_validation, calibration.fitted_validation
        ),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
