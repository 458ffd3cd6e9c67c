"""Structs of the current visit-based layout: what the origin app's newer files add.

The origin app's current visit-based files (its `visit-based/` folder, all but `eylea.yaml`)
describe baseline vision as a `baseline_vision_distribution` (also the layout of its
`populations/` files), loading doses in three places, and discontinuation as named rule
blocks, each with `criteria`, `probability` and `reason`. What each block means in this model,
and which are refused or only reported, is docs/model-v1-layout.md; the checks that span
fields are `engine.model.v1.layout_checks`. Criteria structs forbid unknown keys (checked by
name before conversion): a criterion the model does not read would change behaviour if it did.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from engine.model.baseline_vision import BaselineVisionDistribution
from engine.model.v1.fields import (
    IntervalDays,
    Letters,
    LoadingDoses,
    Probability,
    Range,
    Schema,
    TreatmentMonths,
)

__all__ = [
    "NON_FIRING_BLOCKS",
    "RULE_BLOCK_NAMES",
    "BaselineVisionDistribution",
    "ClinicalImprovements",
    "DiscontinuationBlocks",
    "LoadingPhase",
    "TreatAndExtendParameters",
    "TreatAndTreatParameters",
]

VisitCount = Annotated[int, Meta(ge=1), Range(1, 1000, "visits", integer=True)]
Weeks = Annotated[float, Meta(ge=0.0), Range(0, 520, "weeks")]
LetterLoss = Annotated[float, Meta(ge=0.0), Range(0, 100, "letters")]
WindowDays = Annotated[list[int], Meta(min_length=1, max_length=2)]


class LoadingPhase(Schema, kw_only=True):
    """Loading doses nested in `treat_and_extend_parameters` / `treat_and_treat_parameters`.

    ``dose_1_to_2_days`` / ``dose_2_to_3_days`` are windows [earliest, latest]; the model
    visits on the earliest day (it has no scheduling slack), so they must agree.
    """

    number_of_doses: LoadingDoses | None = None
    interval_days: IntervalDays | None = None
    dose_1_to_2_days: WindowDays | None = None
    dose_2_to_3_days: WindowDays | None = None


class MaintenancePhase(Schema, kw_only=True):
    """Checked against the top-level intervals; adds nothing they do not say."""

    interval_days: WindowDays | None = None
    starts_after_dose: LoadingDoses | None = None


class TreatAndExtendParameters(Schema, kw_only=True):
    """Only `loading_phase` is read; the other keys describe the top-level intervals."""

    loading_phase: LoadingPhase | None = None


class TreatAndTreatParameters(Schema, kw_only=True):
    """`loading_phase` and `maintenance_phase` are read; `monitoring_schedule` is not."""

    loading_phase: LoadingPhase | None = None
    maintenance_phase: MaintenancePhase | None = None


# --- discontinuation rule blocks -------------------------------------------------------------
class _Criteria(Schema, kw_only=True):
    """Base of the criteria structs."""


class StableExtendedCriteria(_Criteria, kw_only=True):
    """STABLE at `consecutive_stable_visits` visits in a row, this one reached after an
    interval of at least `minimum_interval_weeks`, VA within `vision_stable_threshold`
    letters (max - min) over those visits when given."""

    consecutive_stable_visits: VisitCount
    minimum_interval_weeks: Weeks = 0.0
    vision_stable_threshold: LetterLoss | None = None


class VisionBelowCriteria(_Criteria, kw_only=True):
    """VA below `va_less_than` letters at `consecutive_visits` visits in a row.

    `attributable_to_amd` must be true: every vision loss in this model is from AMD.
    """

    va_less_than: Letters
    consecutive_visits: VisitCount = 1
    attributable_to_amd: bool = True


class FrequentInjectionsCriteria(_Criteria, kw_only=True):
    """After `months_on_treatment`, the longest interval so far at most
    `max_achieved_interval_weeks` and the interval shortened at least `attempts` times."""

    max_achieved_interval_weeks: Weeks
    attempts: Annotated[int, Meta(ge=0), Range(0, 1000, "visits", integer=True)] = 0
    months_on_treatment: TreatmentMonths = 0.0


class AnnualReviewCriteria(_Criteria, kw_only=True):
    """At a review (first visit at or after each `months_on_treatment` months), STABLE.

    `vision_stable` and `patient_choice` must be true (the probability is the choice).
    """

    months_on_treatment: Annotated[float, Meta(gt=0.0), Range(1, 1200, "months")]
    vision_stable: bool = True
    patient_choice: bool = True


class TreatmentFailureCriteria(_Criteria, kw_only=True):
    """VA at least `vision_loss_from_baseline` letters below baseline, from visit
    `visits_on_treatment` on, or only at annual reviews (``assessed_at: annual_review``)."""

    vision_loss_from_baseline: LetterLoss
    visits_on_treatment: Annotated[int, Meta(ge=0), Range(0, 1000, "visits", integer=True)] = 0
    assessed_at: Literal["every_visit", "annual_review"] = "every_visit"


class FutilityCriteria(_Criteria, kw_only=True):
    """VA below `vision_below_threshold` and not above the previous visit's VA at
    `no_improvement_visits` visits in a row."""

    vision_below_threshold: Letters
    no_improvement_visits: VisitCount = 1


class _Block(Schema, kw_only=True):
    """A named rule: its criteria, the probability of stopping when they hold, the reason."""

    probability: Probability
    reason: Annotated[str, Meta(min_length=1, max_length=60)]


class StableExtendedBlock(_Block, kw_only=True):
    criteria: StableExtendedCriteria


class VisionBelowBlock(_Block, kw_only=True):
    criteria: VisionBelowCriteria


class FrequentInjectionsBlock(_Block, kw_only=True):
    criteria: FrequentInjectionsCriteria


class AnnualReviewBlock(_Block, kw_only=True):
    criteria: AnnualReviewCriteria


class TreatmentFailureBlock(_Block, kw_only=True):
    criteria: TreatmentFailureCriteria


class FutilityBlock(_Block, kw_only=True):
    criteria: FutilityCriteria


class NeverFiringBlock(_Block, kw_only=True):
    """A rule about events the model does not simulate (missed visits, adverse events)."""

    criteria: dict[str, Any] = msgspec.field(default_factory=dict)


class DiscontinuationBlocks(Schema, kw_only=True):
    """The newer `discontinuation_rules` layout: named blocks, checked in `order`.

    `order` is the file's order of the blocks present (the loader fills it; a file may not
    state it). The first block whose criteria hold decides, with its probability.
    """

    stable_extended_interval: StableExtendedBlock | None = None
    poor_response_25_letters: VisionBelowBlock | None = None
    critical_vision_15_letters: VisionBelowBlock | None = None
    frequent_injections: FrequentInjectionsBlock | None = None
    stable_at_annual_review: AnnualReviewBlock | None = None
    treatment_failure: TreatmentFailureBlock | None = None
    futility: FutilityBlock | None = None
    non_compliance: NeverFiringBlock | None = None
    adverse_event: NeverFiringBlock | None = None
    order: tuple[str, ...] = ()

    def blocks(self) -> list[tuple[str, msgspec.Struct]]:
        """(name, block) of the blocks present, in check order."""
        return [(name, getattr(self, name)) for name in self.order]


RULE_BLOCK_NAMES: tuple[str, ...] = tuple(
    name for name in DiscontinuationBlocks.__struct_fields__ if name != "order"
)
# Blocks about events this model does not simulate: accepted, reported, never fire.
NON_FIRING_BLOCKS: frozenset[str] = frozenset({"non_compliance", "adverse_event"})


class ClinicalImprovements(Schema, kw_only=True):
    """The origin's optional response-type layer; refused when `enabled` (not implemented)."""

    enabled: bool = False
