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
  discontinuations here);
- ``second_eye_visits_{type}`` and ``..._disc``: with second-eye involvement (an annual rate
  of the fellow eye developing neovascular AMD, `EyeSettings.second_eye_rate`), visits of the
  second eye. Its onset is drawn once per patient (exponential, common random numbers); from
  then on the second eye follows the protocol as the first did from enrolment (the first eye's
  own visit schedule, shifted to the onset: same regimen, same response), until death or the
  horizon. It adds visits, injections, costs and clinic workload; its vision does not change
  the better-seeing eye's utility (the fellow-eye distribution stands for it).

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
    "second_eye_onset",
    "second_eye_visits",
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
    second_eye_rate: float = 0.0  # per year; 0: the second eye is never treated


def feature_names(bands: int) -> list[str]:
    """Names of the per-patient vector for `bands` VA bands, in order."""
    names = ["alive_years", "alive_years_disc"]
    names += [f"bse_years_{b}" for b in range(bands)]
    names += [f"bse_years_disc_{b}" for b in range(bands)]
    names += [f"visits_{kind}" for kind in VISIT_TYPES]
    names += [f"visits_{kind}_disc" for kind in VISIT_TYPES]
    names += ["discontinued", "discontinued_disc"]
    names += [f"second_eye_visits_{kind}" for kind in VISIT_TYPES]
    names += [f"second_eye_visits_{kind}_disc" for kind in VISIT_TYPES]
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


def second_eye_onset(
    settings: EyeSettings, seed: int, patient_ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Per patient: days from enrolment to the second eye's first treatment (inf: never)."""
    if settings.second_eye_rate <= 0.0:
        return np.full(len(patient_ids), np.inf)
    uniform = CounterRandom(seed, patient_ids).uniform(0, Purpose.SECOND_EYE_ONSET)
    return -np.log1p(-uniform.astype(np.float64)) / settings.second_eye_rate * _YEAR


def second_eye_visits(
    patients: Columns,
    visits: Columns,
    kind: npt.NDArray[np.intp],
    onset: npt.NDArray[np.float64],
    alive_days: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The second eye's visits: (row of the patient in the block, type, days from enrolment).

    The first eye's visit at t days after enrolment happens for the second eye at onset + t,
    if the patient is then alive and within the horizon (`alive_days` after enrolment).
    """
    size = len(patients["patient_id"])
    first_id = int(patients["patient_id"][0]) if size else 0
    pid = visits["patient_id"].astype(np.int64) - first_id
    enrolment = patients["enrollment_day"].astype(np.int64)
    t = visits["day"].astype(np.int64) - enrolment[pid]
    when = onset[pid] + t
    inside = when < alive_days[pid]
    return pid[inside], kind[inside], when[inside]


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
    onset: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """The (patients x features) matrix of one arm for a block (rows in patient order).

    `onset`: the second eye's onset per patient (days; `second_eye_onset`), None: never.
    """
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
    if onset is not None:
        second, second_kind, when = second_eye_visits(patients, visits, kind, onset, alive * _YEAR)
        second_factor = np.power(1.0 + settings.cost_rate, -when / _YEAR)
        column += 8
        for code in range(len(VISIT_TYPES)):
            mine = second_kind == code
            out[:, column + code] = np.bincount(second[mine], minlength=size)
            out[:, column + 3 + code] = np.bincount(
                second[mine], weights=second_factor[mine], minlength=size
            )
    return out


def weekly_visits(
    visits: Columns,
    loading_doses: int,
    weeks: int,
    second_eye: tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]] | None = None,
) -> npt.NDArray[np.int64]:
    """Visits per whole calendar week (day // 7 from the simulation start) by type.

    (types, weeks); visits in a partial last week are left out (engine.compare.workload).
    `second_eye`: the second eye's visits as (type, calendar day), counted as visits too.
    """
    kind = visit_types(visits["visit"], visits["injected"].astype(bool), loading_doses)
    day = visits["day"].astype(np.int64)
    if second_eye is not None:
        kind = np.concatenate([kind, second_eye[0]])
        day = np.concatenate([day, second_eye[1]])
    week = day // 7
    inside = week < weeks
    code = kind[inside] * weeks + week[inside]
    counts = np.bincount(code, minlength=len(VISIT_TYPES) * weeks)
    return counts.reshape(len(VISIT_TYPES), weeks).astype(np.int64)


def concatenate(tables: Sequence[Columns]) -> Columns:
    """One table from consecutive shards' tables."""
    return {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
