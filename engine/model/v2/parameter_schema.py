"""Schema of the time-based model's parameter files: the six files a protocol names.

Field names are the origin app's (AMD Protocol Explorer, `simulation_v2/`), so its files load
unchanged. Only fields the model reads are declared: every other key of a file is reported as
not used (a warning naming it), never silently dropped. docs/model.md says what each field
means; `Range` annotations give the finite, plausible range a value must meet (the loader
refuses anything outside it with the field path). Mappings keyed by age band (``"50-59"``,
``"95+"``) or by age (``70: 0.0186``) stay mappings here and are checked by the loader.
The protocol file itself is `engine.model.v2.schema`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.model.v1.protocol import (
    Probability,
    Range,
    TransitionMatrix,
    TreatmentEffects,
)

__all__ = [
    "DEFAULT_PRIORITY",
    "Days",
    "DemographicsFile",
    "DiscontinuationFile",
    "DiseaseTransitionsFile",
    "MortalityFile",
    "ProtocolType",
    "TimeBasedParameters",
    "TreatmentEffectFile",
    "VisionFile",
]

# --- value types: loose stored bounds (Meta), then the plausible range (Range) -------------
Letters = Annotated[float, Meta(ge=0.0, le=100.0), Range(0, 100, "letters")]
FortnightChange = Annotated[float, Range(-30, 30, "letters per fortnight")]
FortnightChangeStd = Annotated[float, Meta(ge=0.0), Range(0, 30, "letters per fortnight")]
LetterLoss = Annotated[float, Range(-100, 0, "letters")]
Days = Annotated[int, Meta(ge=0, le=36500), Range(0, 3650, "days", integer=True)]
PositiveDays = Annotated[float, Meta(gt=0.0), Range(1, 3650, "days")]
VisitCount = Annotated[int, Meta(ge=0), Range(0, 1000, "visits", integer=True)]
InjectionCount = Annotated[int, Meta(ge=0), Range(0, 1000, "injections", integer=True)]
Fortnights = Annotated[int, Meta(ge=0), Range(0, 260, "fortnights", integer=True)]
Factor = Annotated[float, Meta(ge=0.0), Range(0, 100, "(a factor)")]
CeilingFactor = Annotated[float, Meta(ge=0.0), Range(1, 3, "(a factor of baseline)")]
Weight = Annotated[float, Meta(ge=0.0), Range(0, 1e6, "(a relative weight)")]
HazardRatio = Annotated[float, Meta(ge=0.0), Range(0.1, 10, "(a hazard ratio)")]
YearsShift = Annotated[float, Range(-20, 20, "years")]
ShareShift = Annotated[float, Range(-1, 1, "(a change of proportion)")]
NoiseStd = Annotated[float, Meta(ge=0.0), Range(0, 30, "letters")]
DecayRate = Annotated[float, Meta(ge=0.0), Range(0, 10, "per fortnight")]
Variation = Annotated[float, Meta(ge=0.0), Range(0, 3, "(a coefficient of variation)")]
ProtocolType = Literal["treat_and_extend", "treat_and_treat", "fixed", "fixed_interval", "prn"]
Category = Literal[
    "death", "poor_vision", "deterioration", "treatment_decision", "attrition", "administrative"
]
# The origin's order (discontinuation.yaml: discontinuation_priority).
DEFAULT_PRIORITY: tuple[Category, ...] = (
    "death",
    "poor_vision",
    "deterioration",
    "treatment_decision",
    "attrition",
    "administrative",
)


class _Schema(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the schema structs: immutable; undeclared keys are reported by the loader."""


class _StateKeyed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of mappings keyed by disease state: a misspelt state name is an error."""


# --- disease_transitions_file ----------------------------------------------------------------
class DiseaseTransitionsFile(_Schema, kw_only=True):
    """Fortnightly (14-day) transition probabilities, untreated; rows sum to 1."""

    fortnightly_transitions: TransitionMatrix


# --- treatment_effect_file -------------------------------------------------------------------
class TreatmentDecay(_Schema, kw_only=True):
    """Transition effect of the last injection: full, then halving, floored (docs/model.md 3.2)."""

    full_effect_duration_days: Days
    half_life_days: PositiveDays
    minimum_effect: Probability = 0.0


class TreatmentResponse(_Schema, kw_only=True):
    """Share of patients who respond; what share of every effect a non-responder gets."""

    responder_probability: Probability = 1.0
    non_responder_effect: Probability = 1.0


class TreatmentEffectFile(_Schema, kw_only=True):
    """How an injection changes the fortnightly transitions, and for how long."""

    treatment_decay: TreatmentDecay
    treatment_multipliers: TreatmentEffects
    treatment_response: TreatmentResponse = TreatmentResponse()


# --- vision_parameters_file ------------------------------------------------------------------
class NormalChange(_Schema, kw_only=True):
    """A normal distribution of the change in true VA over one fortnight."""

    mean: FortnightChange
    std: FortnightChangeStd


class TreatedAndUntreated(_Schema, kw_only=True):
    """Gradual change without (vision effect 0) and with (effect 1) treatment."""

    untreated: NormalChange
    treated: NormalChange


class VisionDecline(_StateKeyed, kw_only=True):
    """Gradual change per state; interpolated by the vision effect (docs/model.md 3.3)."""

    NAIVE: TreatedAndUntreated
    STABLE: TreatedAndUntreated
    ACTIVE: TreatedAndUntreated
    HIGHLY_ACTIVE: TreatedAndUntreated


class ImprovementProbability(_StateKeyed, kw_only=True):
    """Per-fortnight probability that an eligible patient starts an improvement phase."""

    NAIVE: Probability = 0.0
    STABLE: Probability = 0.0
    ACTIVE: Probability = 0.0
    HIGHLY_ACTIVE: Probability = 0.0


class ImprovementRate(_StateKeyed, kw_only=True):
    """Letters gained per fortnight during an improvement phase, per state."""

    STABLE: NormalChange
    ACTIVE: NormalChange
    HIGHLY_ACTIVE: NormalChange


class VisionImprovement(_Schema, kw_only=True):
    """When an improvement phase may start, how long it lasts and how fast it gains."""

    improvement_probability: ImprovementProbability
    improvement_rate: ImprovementRate
    max_improvement_duration_fortnights: Fortnights
    max_treatments_for_improvement: InjectionCount
    treatment_gap_for_improvement_days: Days
    # amdsim's extension (docs/model.md 3.3): each patient's gains in improvement phases are
    # multiplied by a factor drawn at enrolment, lognormal with mean 1 and this coefficient of
    # variation (0, the origin's model: every patient gains alike).
    patient_gain_cv: Variation = 0.0


class VisionCeilings(_Schema, kw_only=True):
    """The highest true VA a patient can reach, from the baseline (docs/model.md 2)."""

    baseline_ceiling_factor: CeilingFactor
    # amdsim's extension (docs/model.md 2): "factor" caps true VA at factor x baseline (the
    # origin's rule); "gain" at baseline + baseline_ceiling_gain letters. Both are then capped
    # by the absolute ceiling.
    ceiling_rule: Literal["factor", "gain"] = "factor"
    baseline_ceiling_gain: Letters = 20.0
    absolute_ceiling_default: Letters
    absolute_ceiling_high_baseline: Letters
    absolute_ceiling_low_baseline: Letters
    high_baseline_threshold: Letters
    low_baseline_threshold: Letters


class VisionEffectDecay(_Schema, kw_only=True):
    """Breakpoints of the piecewise-linear vision effect of the last injection."""

    full_effect_duration_days: Days
    gradual_decline_end_days: Days
    faster_decline_end_days: Days
    effect_at_gradual_start: Probability
    effect_at_faster_start: Probability
    effect_at_minimal_start: Probability


class HaemorrhageRisk(_Schema, kw_only=True):
    """Per-fortnight haemorrhage risk by days since the last injection, and its loss."""

    risk_treated_fortnightly: Probability
    risk_medium_gap_fortnightly: Probability
    risk_long_gap_fortnightly: Probability
    treated_threshold_days: Days
    medium_gap_threshold_days: Days
    highly_active_multiplier: Factor = 1.0
    hemorrhage_loss_min: Letters
    hemorrhage_loss_max: Letters


class VisionMeasurement(_Schema, kw_only=True):
    """Test-retest noise of a VA measurement and the chart's range."""

    measurement_noise_std: NoiseStd
    min_measurable_vision: Letters = 0.0
    max_measurable_vision: Letters = 100.0


class MiscParameters(_Schema, kw_only=True):
    """The two miscellaneous values the model reads."""

    treatment_effect_threshold: Probability
    minimal_effect_decay_rate: DecayRate = 0.0


class VisionFile(_Schema, kw_only=True):
    """Everything about true and measured VA over time."""

    vision_decline_fortnightly: VisionDecline
    vision_improvement: VisionImprovement
    vision_ceilings: VisionCeilings
    treatment_effect_decay: VisionEffectDecay
    hemorrhage_risk: HaemorrhageRisk
    vision_measurement: VisionMeasurement
    misc_parameters: MiscParameters


# --- discontinuation_parameters_file ---------------------------------------------------------
class PoorVision(_Schema, kw_only=True):
    """Stop after more than `grace_period_visits` consecutive visits below the threshold."""

    vision_threshold: Letters
    discontinuation_probability: Probability
    grace_period_visits: VisitCount = 0


class Deterioration(_Schema, kw_only=True):
    """Stop after consecutive visits at least `-vision_loss_threshold` letters below baseline."""

    vision_loss_threshold: LetterLoss
    visits_with_loss_threshold: VisitCount
    discontinuation_probability: Probability


class TreatmentDecision(_Schema, kw_only=True):
    """Clinical decisions to stop: stable for long, or no improvement over baseline."""

    stable_disease_visits_threshold: VisitCount
    stable_discontinuation_probability: Probability
    no_improvement_visits_threshold: VisitCount
    no_improvement_probability: Probability
    min_treatments_before_decision: InjectionCount = 0


class TimeAdjustment(_Schema, kw_only=True):
    """Attrition multiplier by months since enrolment."""

    months_0_12: Factor = 1.0
    months_12_24: Factor = 1.0
    months_24_plus: Factor = 1.0


class BurdenAdjustment(_Schema, kw_only=True):
    """Attrition multiplier by injections per year so far."""

    injections_per_year_0_6: Factor = 1.0
    injections_per_year_6_12: Factor = 1.0
    injections_per_year_12_plus: Factor = 1.0


class Attrition(_Schema, kw_only=True):
    """Loss to follow-up per visit, adjusted for time and treatment burden."""

    base_probability_per_visit: Probability
    time_adjustment: TimeAdjustment = TimeAdjustment()
    injection_burden_adjustment: BurdenAdjustment = BurdenAdjustment()


class Administrative(_Schema, kw_only=True):
    """Discharge by administrative error, per visit."""

    probability_per_visit: Probability


class DiscontinuationCategories(_Schema, kw_only=True):
    """The visit-time discontinuation categories; a category left out never fires."""

    poor_vision: PoorVision | None = None
    deterioration: Deterioration | None = None
    treatment_decision: TreatmentDecision | None = None
    attrition: Attrition | None = None
    administrative: Administrative | None = None


class DiscontinuationFile(_Schema, kw_only=True):
    """Discontinuation categories and the order they are checked in at a visit."""

    discontinuation_parameters: DiscontinuationCategories
    # Rank -> category; the lowest rank is checked first. Death is listed in the origin's
    # files but is not a visit check (it happens every fortnight, docs/model.md 3.1).
    discontinuation_priority: dict[int, Category] = msgspec.field(
        default_factory=lambda: dict(enumerate(DEFAULT_PRIORITY, start=1))
    )


# --- demographics_parameters_file ------------------------------------------------------------
class PopulationAdjustment(_Schema, kw_only=True):
    """How one population type differs from the age and sex tables."""

    age_shift: YearsShift = 0.0
    female_proportion_adjustment: ShareShift = 0.0
    mortality_risk_multiplier: Factor = 1.0


class DemographicsFile(_Schema, kw_only=True):
    """Age at enrolment by band weights, female share by age band, population types."""

    age_distribution_weights: dict[str, Weight]
    gender_distribution_by_age: dict[str, Probability]
    survival_bias_factors: dict[str, Probability] = {}
    population_type_adjustments: dict[str, PopulationAdjustment] = {}


# --- the mortality file (uk_mortality_wet_amd.yaml, beside the other parameter files) -------
class HazardRatios(_Schema, kw_only=True):
    """Hazard ratio of death with wet AMD against the general population."""

    primary: HazardRatio


class LifeTable(_Schema, kw_only=True):
    """Annual probability of death by whole year of age, per sex."""

    male: dict[int, Probability]
    female: dict[int, Probability]


class MortalityFile(_Schema, kw_only=True):
    """The life table and the wet-AMD hazard ratio."""

    hazard_ratios: HazardRatios
    mortality_rates: LifeTable


class TimeBasedParameters(_Schema, kw_only=True):
    """The six parameter files of a time-based protocol, validated."""

    disease_transitions: DiseaseTransitionsFile
    treatment_effect: TreatmentEffectFile
    vision: VisionFile
    discontinuation: DiscontinuationFile
    demographics: DemographicsFile
    mortality: MortalityFile
