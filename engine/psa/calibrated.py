"""Draw calibrated parameters jointly from a calibration's covariance, within their bounds.

A calibration (``calibration.json``) gives fitted values, the bounds the fit searched between and
the natural-scale covariance from its Jacobian. Weakly identified parameters have standard
errors wider than their bounds, so a plain multivariate normal would put most draws outside.
Two methods, both joint (the fit's correlations are kept):

- ``truncated`` (default): the multivariate normal N(fitted, C) restricted to the box of bounds,
  drawn exactly by rejection: candidates come in fixed batches (`FIRST_BATCH`, then `BATCH`) and the first inside
  every bound is the draw. It is the Laplace approximation of the posterior under a flat prior
  on the bounds: an identified combination stays tight, a direction the targets do not inform
  spreads over its range. Medians and means move from the fitted values towards the middle of
  the range, by as much as the bounds bite (`BoundsReport` has both). After `MAX_BATCHES`
  batches without a candidate inside, the last batch's first candidate is clipped to the bounds
  and counted in `BoundsReport.clipped`.
- ``logit``: z = log((x - lower) / (upper - x)) is multivariate normal with mean z(fitted) and
  the delta-method covariance D C D (D = diag(dz/dx) at the fitted values). Every draw is inside
  its bounds and each median is the fitted value, but a standard error wide against the range
  becomes a huge logit-scale spread and the draws gather at the two bounds.

A draw uses only the generator it is given, so draw i depends only on the seed and i.

Does not cover: the uncertainty file's independent parameters, putting values into a protocol
(`engine.psa.sampling`). See docs/psa.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

from engine.errors import UncertaintyError
from engine.input_files import read_input

__all__ = [
    "BATCH",
    "FIRST_BATCH",
    "MAX_BATCHES",
    "NEAR_BOUND",
    "BoundsMethod",
    "BoundsReport",
    "CalibratedSampler",
    "CalibrationUncertainty",
    "load_calibration_uncertainty",
]

BoundsMethod = Literal["truncated", "logit"]
FIRST_BATCH = 32  # the first rejection batch
BATCH = 1024  # rejection candidates per batch; fixed, so a draw does not depend on the count
MAX_BATCHES = 256  # then the draw is clipped (about 262,000 candidates)
NEAR_BOUND = 0.01  # a draw within this share of the range from a bound counts as "at" it
_EDGE = 1e-3  # logit: a fitted value on its bound is centred this share of the range inside


class _CalibrationParameter(msgspec.Struct, frozen=True):
    path: str
    lower: float
    upper: float
    fitted: float
    label: str = ""


class _CalibrationFile(msgspec.Struct, frozen=True):
    parameters: list[_CalibrationParameter]
    covariance: list[list[float]]


class CalibrationUncertainty(msgspec.Struct, frozen=True, kw_only=True):
    """A calibration's fitted values, bounds and natural-scale covariance (``calibration.json``).

    `paths`, `labels`, `fitted`, `lower`, `upper` are per parameter, in the file's order;
    `covariance` is the matching square matrix (rows of floats); `source` the file's name.
    """

    source: str
    paths: list[str]
    labels: list[str]
    fitted: list[float]
    lower: list[float]
    upper: list[float]
    covariance: list[list[float]]


class BoundsReport(msgspec.Struct, frozen=True, kw_only=True):
    """How the calibrated parameters' bounds were handled, and how often they bit.

    Parameters
    ----------
    method
        ``truncated`` or ``logit`` (module docstring); empty when nothing was calibrated.
    labels, fitted
        Per calibrated parameter: its label and fitted value.
    mean, median
        Per calibrated parameter: the draws' mean and median, to set against `fitted`.
    outside_share
        Per calibrated parameter: how often a natural-scale normal candidate fell outside its
        bounds (truncated: counted over the candidates drawn; logit: the normal probability).
    near_bound_share
        Per calibrated parameter: share of draws within `NEAR_BOUND` of the range from a bound.
    acceptance
        Truncated: share of candidates inside every bound (NaN for logit or no draws).
    clipped
        Truncated: draws clipped after `MAX_BATCHES` batches without a candidate inside.
    centred_inside
        Logit: labels of parameters fitted on a bound, centred just inside it.
    outside_range
        Uncertainty-file model parameter (path) -> share of draws outside the range the
        protocol accepts (those draws are refused when applied).
    count
        Number of draws.
    """

    method: str
    labels: list[str]
    fitted: list[float]
    mean: list[float]
    median: list[float]
    outside_share: list[float]
    near_bound_share: list[float]
    acceptance: float
    clipped: int
    centred_inside: list[str]
    outside_range: dict[str, float]
    count: int

    def describe(self) -> str:
        """One or two sentences: the method and how often the bounds bit."""
        parts: list[str] = []
        if not self.labels:
            parts.append("No calibrated parameters drawn.")
        elif self.method == "truncated":
            order = np.argsort(self.outside_share)[::-1][:3]
            worst = ", ".join(f"{self.labels[i]} {self.outside_share[i]:.0%}" for i in order)
            shift = int(np.argmax(np.abs(np.subtract(self.median, self.fitted))))
            parts.append(
                f"{len(self.labels)} calibrated parameters drawn jointly from the calibration's "
                f"normal truncated to their bounds by rejection: {self.acceptance:.3%} of "
                f"candidates were inside every bound, {self.clipped} of {self.count} draws "
                f"clipped; candidates left the bounds most for {worst}."
            )
            parts.append(
                f"Truncation moves medians and means towards the middle of the range "
                f"(most for {self.labels[shift]}: fitted {self.fitted[shift]:.4g}, median "
                f"{self.median[shift]:.4g}, mean {self.mean[shift]:.4g})."
            )
        else:
            order = np.argsort(self.near_bound_share)[::-1][:3]
            worst = ", ".join(f"{self.labels[i]} {self.near_bound_share[i]:.0%}" for i in order)
            parts.append(
                f"{len(self.labels)} calibrated parameters drawn jointly as a normal on the "
                f"logit scale between their bounds (delta-method covariance): every draw inside "
                f"its bounds, each median the fitted value; draws in the outer "
                f"{NEAR_BOUND:.0%} of the range: {worst}."
            )
            if self.centred_inside:
                parts.append(
                    f"Fitted on a bound, centred {_EDGE:.1%} of the range inside: "
                    f"{', '.join(self.centred_inside)}."
                )
        refused = {k: v for k, v in self.outside_range.items() if v > 0}
        if refused:
            listed = ", ".join(f"{k} {v:.1%}" for k, v in refused.items())
            parts.append(
                f"Uncertainty-file draws outside the protocol's range (refused when applied): "
                f"{listed}."
            )
        return " ".join(parts)


def load_calibration_uncertainty(path: Path) -> CalibrationUncertainty:
    """The fitted values, bounds and covariance of ``calibration.json`` at `path`.

    Raises `UncertaintyError` naming the file and field for a missing or unreadable file,
    bad JSON, a covariance that is not square, symmetric and of the parameters' size, with
    finite entries and a non-negative diagonal, or a fitted value outside its bounds.
    """
    path = Path(path)
    label = path.name
    data = read_input(path, UncertaintyError)
    try:
        raw = msgspec.json.decode(data, type=_CalibrationFile)
    except msgspec.ValidationError as exc:
        where, _, problem = str(exc).rpartition(" - at `")
        field = problem.rstrip("`") if where else None
        raise UncertaintyError(label, field, f"{where or exc}") from exc
    except msgspec.DecodeError as exc:
        raise UncertaintyError(label, None, f"is not valid JSON: {exc}") from exc
    n = len(raw.parameters)
    if n == 0:
        raise UncertaintyError(label, "$.parameters", "is empty; nothing was calibrated")
    for i, p in enumerate(raw.parameters):
        where = f"$.parameters[{i}]"
        if not all(math.isfinite(v) for v in (p.lower, p.upper, p.fitted)):
            raise UncertaintyError(label, where, "lower, upper and fitted must be finite")
        if not p.lower < p.upper:
            raise UncertaintyError(label, f"{where}.upper", "must be above lower")
        if not p.lower <= p.fitted <= p.upper:
            raise UncertaintyError(
                label,
                f"{where}.fitted",
                f"{p.fitted:g} is outside its bounds ({p.lower:g} to {p.upper:g})",
            )
    paths = [p.path for p in raw.parameters]
    if len(set(paths)) != n:
        raise UncertaintyError(label, "$.parameters", "names a parameter twice")
    try:
        matrix = np.asarray(raw.covariance, dtype=np.float64)
    except ValueError:
        matrix = np.zeros(0)
    if matrix.shape != (n, n):
        raise UncertaintyError(label, "$.covariance", f"must be {n} x {n}, one row per parameter")
    if not np.all(np.isfinite(matrix)):
        raise UncertaintyError(label, "$.covariance", "has entries that are not finite")
    scale = float(np.max(np.abs(matrix))) or 1.0
    if not np.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-9 * scale):
        raise UncertaintyError(label, "$.covariance", "is not symmetric")
    if np.any(np.diag(matrix) < 0):
        raise UncertaintyError(label, "$.covariance", "has a negative variance on its diagonal")
    return CalibrationUncertainty(
        source=label,
        paths=paths,
        labels=[p.label or p.path for p in raw.parameters],
        fitted=[p.fitted for p in raw.parameters],
        lower=[p.lower for p in raw.parameters],
        upper=[p.upper for p in raw.parameters],
        covariance=matrix.tolist(),
    )


class CalibratedSampler:
    """Joint draws of the calibrated parameters within their bounds (module docstring).

    `draw(rng)` returns one parameter vector; the counters (`candidates`, `outside`,
    `clipped`) accumulate over draws for `report`.
    """

    def __init__(self, calibration: CalibrationUncertainty, method: BoundsMethod) -> None:
        if method not in ("truncated", "logit"):
            raise ValueError(f"bounds method must be 'truncated' or 'logit', got {method!r}")
        self.method = method
        self.calibration = calibration
        self.lower = np.asarray(calibration.lower, dtype=np.float64)
        self.upper = np.asarray(calibration.upper, dtype=np.float64)
        self.width = self.upper - self.lower
        self.fitted = np.asarray(calibration.fitted, dtype=np.float64)
        self.covariance = np.asarray(calibration.covariance, dtype=np.float64)
        self.candidates = 0
        self.outside = np.zeros(self.fitted.size, dtype=np.int64)
        self.clipped = 0
        self.centred: list[int] = []
        if method == "truncated":
            self.centre = self.fitted
            self.factor = _factor(self.covariance)
        else:
            edge = _EDGE * self.width
            inside = np.clip(self.fitted, self.lower + edge, self.upper - edge)
            self.centred = [int(j) for j in np.flatnonzero(inside != self.fitted)]
            self.centre = np.log((inside - self.lower) / (self.upper - inside))
            slope = self.width / ((inside - self.lower) * (self.upper - inside))
            self.factor = _factor(self.covariance * np.outer(slope, slope))

    def draw(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        """One parameter vector, inside every bound."""
        n = self.centre.size
        if self.method == "logit":
            z = self.centre + self.factor @ rng.standard_normal(n)
            share = 0.5 * (1.0 + np.tanh(z / 2.0))  # the logistic function, without overflow
            # |z| > ~37 rounds to a bound; keep the draw strictly inside.
            return self.lower + self.width * np.clip(share, 1e-12, 1.0 - 1e-12)
        for attempt in range(MAX_BATCHES):
            # A small first batch: most calibrations accept at once; the sizes are fixed, so
            # the draw still depends only on the generator.
            size = FIRST_BATCH if attempt == 0 else BATCH
            batch = self.centre + rng.standard_normal((size, n)) @ self.factor.T
            out = (batch < self.lower) | (batch > self.upper)
            inside = np.flatnonzero(~out.any(axis=1))
            used = int(inside[0]) + 1 if inside.size else size
            self.candidates += used
            self.outside += out[:used].sum(axis=0)
            if inside.size:
                return batch[inside[0]]
        self.clipped += 1
        return np.clip(batch[0], self.lower, self.upper)

    def report(
        self, block: npt.NDArray[np.float64], outside_range: dict[str, float]
    ) -> BoundsReport:
        """The `BoundsReport` for `block` (count x parameters), the draws this sampler made."""
        count = int(block.shape[0])
        if count:
            near = (block - self.lower < NEAR_BOUND * self.width) | (
                self.upper - block < NEAR_BOUND * self.width
            )
            near_share = [float(v) for v in near.mean(axis=0)]
            mean = [float(v) for v in block.mean(axis=0)]
            median = [float(v) for v in np.median(block, axis=0)]
        else:
            near_share = [0.0] * self.fitted.size
            mean = median = [math.nan] * self.fitted.size
        if self.method == "truncated":
            outside = [float(v) / max(self.candidates, 1) for v in self.outside]
            acceptance = (count - self.clipped) / self.candidates if self.candidates else math.nan
        else:
            outside = self._normal_outside()
            acceptance = math.nan
        return BoundsReport(
            method=self.method,
            labels=list(self.calibration.labels),
            fitted=list(self.calibration.fitted),
            mean=mean,
            median=median,
            outside_share=outside,
            near_bound_share=near_share,
            acceptance=acceptance,
            clipped=self.clipped,
            centred_inside=[self.calibration.labels[j] for j in self.centred],
            outside_range=outside_range,
            count=count,
        )

    def _normal_outside(self) -> list[float]:
        se = np.sqrt(np.diag(self.covariance))
        shares = []
        for j in range(self.fitted.size):
            if se[j] == 0:
                shares.append(0.0)
                continue
            below = _normal_cdf((self.lower[j] - self.fitted[j]) / se[j])
            above = 1.0 - _normal_cdf((self.upper[j] - self.fitted[j]) / se[j])
            shares.append(float(below + above))
        return shares


def _factor(covariance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """F with F F^T = covariance: Cholesky (unique, so draws match across machines), else,
    for a covariance singular to rounding, eigh with its tiny negative eigenvalues set to 0."""
    try:
        return np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        eigenvalues, vectors = np.linalg.eigh(covariance)
        return vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
