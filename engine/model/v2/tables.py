"""Compile a time-based protocol into the lookup tables its kernel indexes (docs/model.md).

Every per-fortnight quantity that depends on the days `d` since the last injection is
tabulated once per run for every whole day up to `max_day` (after which nothing changes), so
the kernel never evaluates a formula per patient, only indexes. Codes:

- ``dcode = clip(d, -1, max_day) + 1`` (0 = never injected, 1 + d otherwise), plus
  ``rows_per_group`` for non-responders: the effect row of a patient;
- ``vcode = 4 * (dcode) + state``: transition thresholds, gradual change, haemorrhage risk and
  improvement eligibility by (effect row, state).

Death probabilities are by ``sex * ages + (age - first_age)``. Arrays are read-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.model.states import STATE_NAMES
from engine.model.v2.population_tables import band_bounds, beta_table, death_table, female_share
from engine.model.v2.schema import TimeBasedParameters, TimeBasedProtocol

__all__ = [
    "BASELINE_TYPES",
    "CATEGORIES",
    "REGIMEN_TYPES",
    "TimeBasedTables",
    "compile_time_based",
]

FloatArray = npt.NDArray[np.float64]

# Regimen codes: how a regimen injects and picks its next interval (docs/model.md 5).
REGIMEN_TYPES = ("treat_and_extend", "fixed", "prn")
_REGIMEN_CODE = {"treat_and_extend": 0, "treat_and_treat": 1, "fixed": 1, "fixed_interval": 1}
_REGIMEN_CODE["prn"] = 2
BASELINE_TYPES = ("normal", "uniform", "beta", "beta_with_threshold")
# Visit-time discontinuation categories in their code order (treatment_decision is one
# category with two reasons: stable_disease, then no_improvement).
CATEGORIES = ("poor_vision", "deterioration", "treatment_decision", "attrition", "administrative")
# With no minimum effect, 0.5 ** x never reaches 0: the table stops where e < 2**-30.
_NEGLIGIBLE_EFFECT_HALVINGS = 30
_MAX_TABLE_DAYS = 36_600  # a hundred years: no run is longer


@dataclass(frozen=True, slots=True, eq=False)
class TimeBasedTables:
    """Lookup tables and scalars of one time-based protocol (read-only numpy arrays)."""

    max_day: int
    rows_per_group: int  # effect rows per responder group: max_day + 2
    responder_probability: float
    # By vcode: new state = (u >= t0) + (u >= t1) + (u >= t2), u ~ U[0, 1).
    transition_t0: FloatArray
    transition_t1: FloatArray
    transition_t2: FloatArray
    naive_unreachable: bool  # every transition_t0 is 0: no state moves into NAIVE
    vision_effect: FloatArray  # v(d) by effect row, non-responders included
    gradual_mean: FloatArray  # by vcode (state after the transition)
    gradual_std: FloatArray
    haemorrhage_risk: FloatArray  # by vcode
    improvement_eligible: npt.NDArray[np.bool_]  # by vcode: state not NAIVE and v > threshold
    improvement_probability: FloatArray  # by state
    improvement_mean: FloatArray  # by state (NAIVE uses STABLE's)
    improvement_std: FloatArray
    improvement_fortnights: int
    improvement_max_injections: int
    improvement_gap_days: int
    haemorrhage_loss_min: float
    haemorrhage_loss_max: float
    noise_std: float
    # Death: probability per fortnight by sex * ages + (clipped age - first_age).
    death_probability: FloatArray
    first_age: int
    ages: int
    # Enrolment.
    age_band_cumulative: FloatArray  # cumulative weights / total, last = 1
    age_band_lo: FloatArray
    age_band_hi: FloatArray
    age_shift: float
    female_share_by_age: FloatArray  # by whole year of age 0..150, adjusted and clipped
    baseline_type: int  # index in BASELINE_TYPES
    baseline_mean: float
    baseline_std: float
    baseline_min: float
    baseline_max: float
    beta_cdf: FloatArray  # CDF on the grid below (beta types only)
    beta_grid: FloatArray
    ceiling_factor: float
    ceiling_gain: float  # letters above baseline, when ceiling_rule is "gain" (else -1)
    gain_sigma: float  # sigma of the log of the per-patient gain factor (0: none)
    ceiling_default: float
    ceiling_high: float
    ceiling_low: float
    ceiling_high_threshold: float
    ceiling_low_threshold: float
    # Treatment.
    loading_doses: int
    loading_interval: int
    when_active: bool
    regimen_start: npt.NDArray[np.int32]  # start day of each regimen (base first, day 0)
    regimen_type: tuple[int, ...]  # index in REGIMEN_TYPES
    regimen_min: npt.NDArray[np.int32]
    regimen_max: npt.NDArray[np.int32]
    regimen_extension: npt.NDArray[np.int32]
    regimen_shortening: npt.NDArray[np.int32]
    regimen_cap: npt.NDArray[np.int32]  # max days between PRN injections; -1 none
    regimen_vision_loss: npt.NDArray[np.int32]  # T&E: letters lost that shorten; -1 none
    # Discontinuation: categories in priority order, each (name, parameters as floats).
    discontinuation: tuple[tuple[str, tuple[float, ...]], ...]


def compile_time_based(protocol: TimeBasedProtocol) -> TimeBasedTables:
    """Tabulate `protocol` (its `parameters` must be loaded) for the kernel."""
    params = protocol.parameters
    if params is None:
        raise ValueError("a time-based protocol needs its parameter files loaded")
    vision = params.vision
    max_day = _max_day(params)
    days = np.arange(max_day + 1, dtype=np.float64)
    response = params.treatment_effect.treatment_response
    groups = []
    for factor in (1.0, response.non_responder_effect):
        transition = np.concatenate(([0.0], _transition_effect(params, days))) * factor
        effect = np.concatenate(([0.0], _vision_effect(params, days))) * factor
        groups.append((transition, effect))
    transition_effect = np.concatenate([g[0] for g in groups])
    vision_effect = np.concatenate([g[1] for g in groups])
    thresholds = _transition_thresholds(params, transition_effect)

    decline = vision.vision_decline_fortnightly
    untreated = [getattr(decline, s).untreated for s in STATE_NAMES]
    treated = [getattr(decline, s).treated for s in STATE_NAMES]
    u_mean, t_mean = (np.array([c.mean for c in x]) for x in (untreated, treated))
    u_std, t_std = (np.array([c.std for c in x]) for x in (untreated, treated))
    v = vision_effect[:, None]
    gradual_mean = u_mean + v * (t_mean - u_mean)
    gradual_std = u_std + v * (t_std - u_std)
    threshold = vision.misc_parameters.treatment_effect_threshold
    eligible = (v > threshold) & (np.arange(4) > 0)

    improvement = vision.vision_improvement
    rate = improvement.improvement_rate
    rates = [rate.STABLE, rate.STABLE, rate.ACTIVE, rate.HIGHLY_ACTIVE]
    prob = improvement.improvement_probability
    demographics = params.demographics
    adjustment = demographics.population_type_adjustments.get(protocol.population_type)
    age_shift = adjustment.age_shift if adjustment else 0.0
    female_shift = adjustment.female_proportion_adjustment if adjustment else 0.0
    mortality_multiplier = adjustment.mortality_risk_multiplier if adjustment else 1.0
    bands = [band_bounds(name) for name in demographics.age_distribution_weights]
    weights = np.array(list(demographics.age_distribution_weights.values()), dtype=np.float64)
    death, first_age, ages = death_table(params.mortality, demographics, mortality_multiplier)
    baseline = protocol.baseline_vision_distribution
    beta_grid, beta_cdf = beta_table(baseline)
    ceilings = vision.vision_ceilings
    return TimeBasedTables(
        max_day=max_day,
        rows_per_group=max_day + 2,
        responder_probability=response.responder_probability,
        transition_t0=_frozen(thresholds[:, 0]),
        transition_t1=_frozen(thresholds[:, 1]),
        transition_t2=_frozen(thresholds[:, 2]),
        naive_unreachable=bool((thresholds[:, 0] <= 0.0).all()),
        vision_effect=_frozen(vision_effect),
        gradual_mean=_frozen(gradual_mean.ravel()),
        gradual_std=_frozen(gradual_std.ravel()),
        haemorrhage_risk=_frozen(_haemorrhage_table(params, max_day).ravel()),
        improvement_eligible=_frozen(eligible.ravel()),
        improvement_probability=_frozen(
            np.array([prob.NAIVE, prob.STABLE, prob.ACTIVE, prob.HIGHLY_ACTIVE])
        ),
        improvement_mean=_frozen(np.array([r.mean for r in rates])),
        improvement_std=_frozen(np.array([r.std for r in rates])),
        improvement_fortnights=improvement.max_improvement_duration_fortnights,
        improvement_max_injections=improvement.max_treatments_for_improvement,
        improvement_gap_days=improvement.treatment_gap_for_improvement_days,
        haemorrhage_loss_min=vision.hemorrhage_risk.hemorrhage_loss_min,
        haemorrhage_loss_max=vision.hemorrhage_risk.hemorrhage_loss_max,
        noise_std=vision.vision_measurement.measurement_noise_std,
        death_probability=_frozen(death),
        first_age=first_age,
        ages=ages,
        age_band_cumulative=_frozen(np.cumsum(weights) / weights.sum()),
        age_band_lo=_frozen(np.array([b[0] for b in bands], dtype=np.float64)),
        age_band_hi=_frozen(np.array([b[1] for b in bands], dtype=np.float64)),
        age_shift=age_shift,
        female_share_by_age=_frozen(female_share(demographics, female_shift)),
        baseline_type=BASELINE_TYPES.index(baseline.type),
        baseline_mean=baseline.mean if baseline.mean is not None else 0.0,
        baseline_std=baseline.std if baseline.std is not None else 0.0,
        baseline_min=baseline.min,
        baseline_max=baseline.max,
        beta_cdf=_frozen(beta_cdf),
        beta_grid=_frozen(beta_grid),
        ceiling_factor=ceilings.baseline_ceiling_factor,
        ceiling_gain=ceilings.baseline_ceiling_gain if ceilings.ceiling_rule == "gain" else -1.0,
        gain_sigma=math.sqrt(math.log1p(improvement.patient_gain_cv**2)),
        ceiling_default=ceilings.absolute_ceiling_default,
        ceiling_high=ceilings.absolute_ceiling_high_baseline,
        ceiling_low=ceilings.absolute_ceiling_low_baseline,
        ceiling_high_threshold=ceilings.high_baseline_threshold,
        ceiling_low_threshold=ceilings.low_baseline_threshold,
        loading_doses=protocol.loading_dose_injections,
        loading_interval=protocol.loading_dose_interval_days,
        when_active=protocol.injection_rule == "when_active",
        **_regimens(protocol),
        discontinuation=_discontinuation(params),
    )


def _max_day(params: TimeBasedParameters) -> int:
    """The last day `d` at which some tabulated effect still changes."""
    decay = params.treatment_effect.treatment_decay
    floor = max(decay.minimum_effect, 2.0**-_NEGLIGIBLE_EFFECT_HALVINGS)
    transition_end = decay.full_effect_duration_days + decay.half_life_days * -math.log2(floor)
    curve = params.vision.treatment_effect_decay
    rate = params.vision.misc_parameters.minimal_effect_decay_rate
    faster_end = curve.faster_decline_end_days
    vision_end = faster_end
    if rate > 0:
        vision_end += faster_end * curve.effect_at_minimal_start / rate
    haemorrhage_end = params.vision.hemorrhage_risk.medium_gap_threshold_days
    last = max(transition_end, vision_end, haemorrhage_end, curve.gradual_decline_end_days)
    return min(math.ceil(last) + 1, _MAX_TABLE_DAYS)


def _transition_effect(params: TimeBasedParameters, days: FloatArray) -> FloatArray:
    """e(d) of docs/model.md 3.2 for injected patients."""
    decay = params.treatment_effect.treatment_decay
    full = decay.full_effect_duration_days
    halving = np.maximum(0.5 ** ((days - full) / decay.half_life_days), decay.minimum_effect)
    return np.where(days <= full, 1.0, halving)


def _vision_effect(params: TimeBasedParameters, days: FloatArray) -> FloatArray:
    """v(d) of docs/model.md 3.3 for injected patients: piecewise linear, then to zero."""
    curve = params.vision.treatment_effect_decay
    rate = params.vision.misc_parameters.minimal_effect_decay_rate
    full, gradual, faster = (
        curve.full_effect_duration_days,
        curve.gradual_decline_end_days,
        curve.faster_decline_end_days,
    )
    points = np.interp(
        days,
        [full, gradual, faster],
        [
            curve.effect_at_gradual_start,
            curve.effect_at_faster_start,
            curve.effect_at_minimal_start,
        ],
    )
    tail = np.maximum(0.0, curve.effect_at_minimal_start - rate * (days - faster) / faster)
    return np.where(days <= full, 1.0, np.where(days <= faster, points, tail))


def _transition_thresholds(params: TimeBasedParameters, effect: FloatArray) -> FloatArray:
    """Cumulative P'[s][j], j < 3, by (effect row, state); unreachable tails never match."""
    matrix = params.disease_transitions.fortnightly_transitions
    base = np.array([[getattr(getattr(matrix, s), j) for j in STATE_NAMES] for s in STATE_NAMES])
    multipliers = params.treatment_effect.treatment_multipliers
    m = np.array(
        [
            [getattr(getattr(multipliers, s).multipliers, j) for j in STATE_NAMES]
            for s in STATE_NAMES
        ]
    )
    weights = base[None] * (1.0 + effect[:, None, None] * (m[None] - 1.0))
    totals = weights.sum(axis=2, keepdims=True)
    # A row whose weights all vanish keeps its state (nothing else is possible).
    stay = np.broadcast_to(np.eye(4)[None], weights.shape)
    weights = np.where(totals > 0, weights, stay)
    probabilities = weights / weights.sum(axis=2, keepdims=True)
    cumulative = np.cumsum(probabilities, axis=2)[:, :, :3]
    remaining = np.cumsum(probabilities[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    # Where no later state has any probability, the threshold can never be reached.
    cumulative = np.where(remaining > 0, cumulative, 2.0)
    return cumulative.reshape(-1, 3)


def _haemorrhage_table(params: TimeBasedParameters, max_day: int) -> FloatArray:
    """Risk by (effect row, state) for both responder groups (the risk ignores response)."""
    risk = params.vision.hemorrhage_risk
    days = np.arange(max_day + 1)
    by_day = np.where(
        days <= risk.treated_threshold_days,
        risk.risk_treated_fortnightly,
        np.where(
            days <= risk.medium_gap_threshold_days,
            risk.risk_medium_gap_fortnightly,
            risk.risk_long_gap_fortnightly,
        ),
    )
    by_day = np.concatenate(([risk.risk_long_gap_fortnightly], by_day))
    by_state = np.array([0.0, 0.0, 1.0, risk.highly_active_multiplier])
    table = np.minimum(by_day[:, None] * by_state[None], 1.0)
    return np.concatenate([table, table])


def _regimens(protocol: TimeBasedProtocol) -> dict[str, object]:
    """The base regimen then each phase, in start-day order."""
    phases = sorted(protocol.phases, key=lambda p: p.start_day)
    rows = [protocol, *phases]
    return {
        "regimen_start": _frozen(np.array([0] + [p.start_day for p in phases], dtype=np.int32)),
        "regimen_type": tuple(REGIMEN_TYPES.index(_REGIMEN_TYPE[r.protocol_type]) for r in rows),
        "regimen_min": _frozen(np.array([r.min_interval_days for r in rows], dtype=np.int32)),
        "regimen_max": _frozen(np.array([r.max_interval_days for r in rows], dtype=np.int32)),
        "regimen_extension": _frozen(np.array([r.extension_days for r in rows], dtype=np.int32)),
        "regimen_shortening": _frozen(np.array([r.shortening_days for r in rows], dtype=np.int32)),
        "regimen_vision_loss": _frozen(
            np.array(
                [
                    -1
                    if r.shorten_on_vision_loss_letters is None
                    else r.shorten_on_vision_loss_letters
                    for r in rows
                ],
                dtype=np.int32,
            )
        ),
        "regimen_cap": _frozen(
            np.array(
                [
                    -1 if r.max_days_between_injections is None else r.max_days_between_injections
                    for r in rows
                ],
                dtype=np.int32,
            )
        ),
    }


_REGIMEN_TYPE = {name: REGIMEN_TYPES[code] for name, code in _REGIMEN_CODE.items()}


def _discontinuation(params: TimeBasedParameters) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Visit-time categories present in the file, in priority order, with their numbers."""
    file = params.discontinuation
    categories = file.discontinuation_parameters
    out: list[tuple[str, tuple[float, ...]]] = []
    for _, name in sorted(file.discontinuation_priority.items()):
        if name == "death" or name in (n for n, _ in out):
            continue
        block = getattr(categories, name)
        if block is None:
            continue
        if name == "poor_vision":
            values = (
                block.vision_threshold,
                block.grace_period_visits,
                block.discontinuation_probability,
            )
        elif name == "deterioration":
            values = (
                block.vision_loss_threshold,
                block.visits_with_loss_threshold,
                block.discontinuation_probability,
            )
        elif name == "treatment_decision":
            values = (
                block.min_treatments_before_decision,
                block.stable_disease_visits_threshold,
                block.stable_discontinuation_probability,
                block.no_improvement_visits_threshold,
                block.no_improvement_probability,
            )
        elif name == "attrition":
            time, burden = block.time_adjustment, block.injection_burden_adjustment
            values = (
                block.base_probability_per_visit,
                time.months_0_12,
                time.months_12_24,
                time.months_24_plus,
                burden.injections_per_year_0_6,
                burden.injections_per_year_6_12,
                burden.injections_per_year_12_plus,
            )
        else:
            values = (block.probability_per_visit,)
        out.append((name, tuple(float(v) for v in values)))
    return tuple(out)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array
