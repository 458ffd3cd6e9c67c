"""Per-patient quantities of one arm that costs and QALYs are linear in (docs/analysis.md).

For every patient of a block the arm's simulation gives a vector (`feature_names`):

- ``alive_years`` and ``alive_years_disc``: years from enrolment to death or the horizon;
- ``bse_years_{b}`` and ``bse_years_disc_{b}``: years with the better-seeing eye (BSE) in VA
  band b. The BSE is the treated eye for a share of patients (drawn once per patient), else
  the fellow eye, whose band is drawn once per patient from the fellow-eye distribution and
  held for life (engine.economics.utilities);
- ``visits_{type}`` and ``visits_{type}_disc`` for the visit types loading injection,
  injection and monitoring: the first `loading_dose_injections` visits that inject are
  loading injections, later injecting visits injections, the others monitoring;
- ``discontinued`` and ``discontinued_disc``: a discontinuation by the clinic (deaths are not
  discontinuations here).

``_disc`` values are discounted per day from enrolment: visits and discontinuations at the
cost rate, years at the outcome rate (exact integral, engine.model.v2.vision_time). Both
fellow-eye draws use common random numbers keyed on the patient, so every arm sees the same
fellow eye. Cost = prices @ vector, QALYs = utilities @ vector: the merged moments of the
vector (engine.compare.matrix_moments) give every economic figure and its uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from engine.columns import NULL, Columns
from engine.model.v2.random_numbers import CounterRandom, Purpose
from engine.model.v2.vision_time import VisionTimeTracker

__all__ = [
    "VISIT_TYPES",
    "EyeSettings",
    "arm_features",
    "feature_index",
    "feature_names",
    "fellow_eye",
    "visit_types",
    "weekly_visits",
]

VISIT_TYPES = ("loading_injection", "injection", "monitoring")
_LOADING, _INJECTION, _MONITORING = 0, 1, 2
_DEATH_REASON = 0  # engine.model.states.V2_REASON_NAMES[0]
_YEAR = 365.25


class EyeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """VA bands (lower edges, letters), the fellow eye and the discount rates of a comparison."""

    edges: list[float]
    fellow_probabilities: list[float]  # one per band; sums to 1
    treated_eye_better_share: float
    cost_rate: float = 0.035
    outcome_rate: float = 0.035


def feature_names(bands: int) -> list[str]:
    """Names of the per-patient vector for `bands` VA bands, in order."""
    names = ["alive_years", "alive_years_disc"]
    names += [f"bse_years_{b}" for b in range(bands)]
    names += [f"bse_years_disc_{b}" for b in range(bands)]
    names += [f"visits_{kind}" for kind in VISIT_TYPES]
    names += [f"visits_{kind}_disc" for kind in VISIT_TYPES]
    names += ["discontinued", "discontinued_disc"]
    return names


def feature_index(bands: int) -> dict[str, int]:
    """Position of each name of `feature_names(bands)`."""
    return {name: i for i, name in enumerate(feature_names(bands))}


def fellow_eye(
    settings: EyeSettings, seed: int, patient_ids: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """Per patient: is the treated eye the better-seeing eye, and the fellow eye's band."""
    source = CounterRandom(seed, patient_ids)
    better = source.uniform(0, Purpose.FELLOW_EYE_BETTER) < settings.treated_eye_better_share
    cumulative = np.cumsum(settings.fellow_probabilities)
    cumulative[-1] = 1.0  # a rounding shortfall must not leave a uniform without a band
    band = np.searchsorted(cumulative, source.uniform(0, Purpose.FELLOW_EYE_BAND), side="right")
    return better, np.minimum(band, len(cumulative) - 1)


def visit_types(
    visit_number: npt.NDArray[np.integer], injected: npt.NDArray[np.bool_], loading_doses: int
) -> npt.NDArray[np.intp]:
    """Each visit's type code (index into `VISIT_TYPES`)."""
    kind = np.where(injected, _INJECTION, _MONITORING).astype(np.intp)
    kind[injected & (visit_number < loading_doses)] = _LOADING
    return kind


def arm_features(
    patients: Columns,
    visits: Columns,
    tracker: VisionTimeTracker,
    better: npt.NDArray[np.bool_],
    fellow_band: npt.NDArray[np.intp],
    loading_doses: int,
    settings: EyeSettings,
) -> npt.NDArray[np.float64]:
    """The (patients x features) matrix of one arm for a block (rows in patient order)."""
    size = len(patients["patient_id"])
    first_id = int(patients["patient_id"][0]) if size else 0
    bands = tracker.bands
    out = np.zeros((size, len(feature_names(bands))))
    years, discounted = tracker.years, tracker.discounted_years
    alive = years.sum(axis=1)
    alive_disc = discounted.sum(axis=1)
    out[:, 0] = alive
    out[:, 1] = alive_disc
    fellow = np.zeros((size, bands))
    fellow[np.arange(size), fellow_band] = 1.0
    treated_better = better[:, None]
    out[:, 2 : 2 + bands] = np.where(treated_better, years, fellow * alive[:, None])
    out[:, 2 + bands : 2 + 2 * bands] = np.where(
        treated_better, discounted, fellow * alive_disc[:, None]
    )

    enrolment = patients["enrollment_day"].astype(np.int64)
    pid = visits["patient_id"].astype(np.int64) - first_id
    t = visits["day"].astype(np.int64) - enrolment[pid]
    kind = visit_types(visits["visit"], visits["injected"].astype(bool), loading_doses)
    factor = np.power(1.0 + settings.cost_rate, -t / _YEAR)
    column = 2 + 2 * bands
    for code in range(len(VISIT_TYPES)):
        mine = kind == code
        out[:, column + code] = np.bincount(pid[mine], minlength=size)
        out[:, column + 3 + code] = np.bincount(pid[mine], weights=factor[mine], minlength=size)
    reason = patients["discontinuation_reason"].astype(np.int64)
    stopped = (reason != NULL) & (reason != _DEATH_REASON)
    stop_t = patients["discontinuation_day"].astype(np.int64) - enrolment
    out[:, column + 6] = stopped
    out[:, column + 7] = np.where(
        stopped, np.power(1.0 + settings.cost_rate, -np.maximum(stop_t, 0) / _YEAR), 0.0
    )
    return out


def weekly_visits(visits: Columns, loading_doses: int, weeks: int) -> npt.NDArray[np.int64]:
    """Visits per whole calendar week (day // 7 from the simulation start) by type.

    (types, weeks); visits in a partial last week are left out (engine.compare.workload).
    """
    kind = visit_types(visits["visit"], visits["injected"].astype(bool), loading_doses)
    week = visits["day"].astype(np.int64) // 7
    inside = week < weeks
    code = kind[inside] * weeks + week[inside]
    counts = np.bincount(code, minlength=len(VISIT_TYPES) * weeks)
    return counts.reshape(len(VISIT_TYPES), weeks).astype(np.int64)


def concatenate(tables: Sequence[Columns]) -> Columns:
    """One table from consecutive shards' tables."""
    return {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
