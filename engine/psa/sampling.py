"""Draw PSA parameter sets: calibrated parameters jointly, the uncertainty file's independently.

Determinism: draw i depends only on (seed, i) and the inputs, never on how many draws were
asked for, so a resumed or extended PSA reproduces its draws. Each draw takes its own streams,
``SeedSequence([seed, i, stream])``: stream 0 for the calibrated parameters, and for each
uncertainty-file entry the CRC-32 of its parameter path, so adding or reordering entries leaves
the other entries' values unchanged.

Calibrated parameters (``calibration.json``) are drawn jointly from the calibration's
covariance, within their bounds: by default the normal truncated to the bounds (exact, by
rejection), or on the logit scale (`engine.psa.calibrated` explains both and what each does to
medians and means). `PsaDraws.truncation` reports the method and how often the bounds bit.
Uncertainty-file parameters are drawn independently from their declared distributions, not
bounded: a model value outside the protocol's range is refused when applied.

`apply_model` puts a draw's model values into a protocol through
`engine.calibration.free_parameters.with_values`, so the loader checks every range; a
combination it refuses raises `ProtocolError`, and the caller may skip or redraw that draw.

Does not cover: reading the uncertainty file (`engine.psa.uncertainty`), pricing economic
values, simulating, summarising (`engine.psa.summary`). See docs/psa.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from engine.calibration.free_parameters import parse_free, with_values
from engine.errors import UncertaintyError
from engine.model.v2.schema import TimeBasedProtocol
from engine.psa.calibrated import (
    BoundsMethod,
    BoundsReport,
    CalibratedSampler,
    CalibrationUncertainty,
    load_calibration_uncertainty,
)
from engine.psa.uncertainty import Uncertain, row_of

__all__ = [
    "BoundsReport",
    "CalibrationUncertainty",
    "Draw",
    "PsaDraws",
    "apply_model",
    "draw_parameters",
    "load_calibration_uncertainty",
]


class Draw(msgspec.Struct, frozen=True, kw_only=True):
    """One PSA parameter set.

    Parameters
    ----------
    index
        The draw's number; its values depend only on the seed and this number.
    model
        Model path -> value; a Dirichlet row gives one entry per state, diagonal included
        (``...fortnightly_transitions.STABLE.STABLE``), which `apply_model` derives from the rest.
    economic
        Economic path (``costs.``, ``utilities.``) -> value, applied when pricing.
    parameters
        Every drawn number by path, for a per-draw table.
    """

    index: int
    model: dict[str, float]
    economic: dict[str, float]
    parameters: dict[str, float]

    @property
    def economic_only(self) -> bool:
        """True when no model value is drawn: price the stored simulation, do not re-simulate."""
        return not self.model


class PsaDraws:
    """K parameter sets, drawn up front; `draw(i)` returns one as a `Draw`.

    `values` is the (count, P) array of every drawn number in `parameter_names` order.
    """

    def __init__(
        self,
        values: npt.NDArray[np.float64],
        parameter_names: list[str],
        economic: list[bool],
        truncation: BoundsReport,
    ) -> None:
        self.values = values
        self.parameter_names = parameter_names
        self.truncation = truncation
        self._economic = economic

    @property
    def count(self) -> int:
        """Number of draws."""
        return int(self.values.shape[0])

    def draw(self, i: int) -> Draw:
        """Draw `i` (0 <= i < count)."""
        if not 0 <= i < self.count:
            raise IndexError(f"draw {i} out of range; there are {self.count} draws")
        row = [float(v) for v in self.values[i]]
        model = {
            name: value
            for name, value, economic in zip(self.parameter_names, row, self._economic, strict=True)
            if not economic
        }
        economic = {
            name: value
            for name, value, economic in zip(self.parameter_names, row, self._economic, strict=True)
            if economic
        }
        return Draw(
            index=i,
            model=model,
            economic=economic,
            parameters=dict(zip(self.parameter_names, row, strict=True)),
        )


def draw_parameters(
    count: int,
    seed: int,
    calibration: CalibrationUncertainty | None,
    uncertain: Sequence[Uncertain],
    *,
    bounds: BoundsMethod = "truncated",
) -> PsaDraws:
    """`count` parameter sets; draw i depends only on (`seed`, i), whatever `count` is.

    `bounds` is how calibrated parameters keep within their bounds (`engine.psa.calibrated`).
    Raises `UncertaintyError` when an uncertainty-file entry also names a calibrated
    parameter (or a Dirichlet row holds one): the calibration's covariance already draws it.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _check_overlap(calibration, uncertain)
    columns: list[npt.NDArray[np.float64]] = []
    names: list[str] = []
    economic: list[bool] = []
    sampler = None
    if calibration is not None:
        sampler = CalibratedSampler(calibration, bounds)
        calibrated = np.array(
            [sampler.draw(_rng(seed, i, 0)) for i in range(count)], dtype=np.float64
        ).reshape(count, len(calibration.paths))
        columns.append(calibrated)
        names += calibration.paths
        economic += [False] * len(calibration.paths)
    outside_range: dict[str, float] = {}
    for entry in uncertain:
        stream = zlib.crc32(entry.parameter.encode("utf-8"))
        block = np.array(
            [_draw_entry(entry, _rng(seed, i, stream)) for i in range(count)], dtype=np.float64
        ).reshape(count, len(entry.names()))
        columns.append(block)
        names += entry.names()
        economic += [entry.economic] * len(entry.names())
        if not entry.economic and entry.distribution != "dirichlet":
            bad = (block[:, 0] < entry.lower) | (block[:, 0] > entry.upper)
            outside_range[entry.parameter] = float(bad.mean()) if count else 0.0
    values = np.hstack(columns) if columns else np.zeros((count, 0))
    if sampler is not None:
        report = sampler.report(columns[0], outside_range)
    else:
        report = BoundsReport(
            method="",
            labels=[],
            fitted=[],
            mean=[],
            median=[],
            outside_share=[],
            near_bound_share=[],
            acceptance=float("nan"),
            clipped=0,
            centred_inside=[],
            outside_range=outside_range,
            count=count,
        )
    return PsaDraws(values, names, economic, report)


def apply_model(protocol: TimeBasedProtocol, draw: Draw) -> TimeBasedProtocol:
    """`protocol` with `draw`'s model values, validated by the loader as a file would be.

    A transition row's diagonal takes what the row's other probabilities leave (the draw's
    diagonal entry is that same number). Raises `ProtocolError` when the loader refuses the
    combination (a value outside its range, a row that no longer sums to 1): the caller may
    skip the draw or redraw; `ParameterError` when the protocol lacks a path.
    """
    if draw.economic_only:
        return protocol
    paths = [path for path in draw.model if not _is_diagonal(path)]
    parameters = parse_free(", ".join(paths), protocol) if paths else []
    return with_values(protocol, parameters, [draw.model[path] for path in paths])


# --- drawing ---------------------------------------------------------------------------------
def _draw_entry(entry: Uncertain, rng: np.random.Generator) -> list[float]:
    a = entry.arguments
    if entry.distribution == "dirichlet":
        # Gamma variates normalised: a zero alpha gives exactly 0 (numpy's dirichlet refuses it).
        gammas = np.array([rng.gamma(alpha) if alpha > 0 else 0.0 for alpha in a])
        return [float(v) for v in gammas / gammas.sum()]
    if entry.distribution == "beta":
        return [float(rng.beta(a[0], a[1]))]
    if entry.distribution == "gamma":
        return [float(rng.gamma(a[0], a[1]))]
    if entry.distribution == "lognormal":
        return [float(rng.lognormal(a[0], a[1]))]
    return [float(rng.normal(a[0], a[1]))]


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def _is_diagonal(path: str) -> bool:
    keys = path.split(".")
    return row_of(path) is not None and len(keys) == 4 and keys[2] == keys[3]


def _check_overlap(
    calibration: CalibrationUncertainty | None, uncertain: Sequence[Uncertain]
) -> None:
    if calibration is None:
        return
    calibrated = set(calibration.paths)
    rows = {row_of(path) for path in calibration.paths} - {None}
    for entry in uncertain:
        where = f"$.uncertainty[{entry.index}].parameter"
        if entry.parameter in calibrated:
            raise UncertaintyError(
                entry.file,
                where,
                f"{entry.parameter} is also calibrated ({calibration.source}); its draws come "
                "from the calibration's covariance; remove this entry",
            )
        if entry.distribution == "dirichlet" and entry.parameter in rows:
            raise UncertaintyError(
                entry.file,
                where,
                f"the row {entry.parameter} holds a calibrated probability "
                f"({calibration.source}); draw its other probabilities one by one instead",
            )
