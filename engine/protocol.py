"""Protocol schema: the typed, frozen structs a protocol YAML file is validated into.

Field names follow the files of existing AMD protocol explorers, so those files load unchanged.
Per-field constraints (types, ranges) live here as `msgspec.Meta`; checks that span fields
(row sums, min <= max) live in `engine.protocol_loader`. See the README's "Protocol format".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "BaselineVision",
    "DiscontinuationRules",
    "Multipliers",
    "Protocol",
    "ProtocolType",
    "TransitionMatrix",
    "TransitionRow",
    "TreatmentEffect",
    "TreatmentEffects",
    "VisionChange",
    "VisionChangeModel",
]

ProtocolType = Literal["treat_and_extend", "fixed", "prn"]

Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Letters = Annotated[float, Meta(ge=0.0, le=100.0)]
NonNegative = Annotated[float, Meta(ge=0.0)]
# Intervals are capped at ten years so that day counts fit the compact on-disk integer types.
IntervalDays = Annotated[int, Meta(ge=1, le=3650)]
StepDays = Annotated[int, Meta(ge=0, le=3650)]


class _Schema(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the schema structs: immutable, unknown keys tolerated.

    Subclasses pass ``kw_only=True`` themselves: msgspec applies it per class.
    """


class _StateKeyed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of mappings keyed by disease state: a misspelt state name is an error."""


class TransitionRow(_StateKeyed, kw_only=True):
    """Probabilities of moving from one state to each state at the next visit."""

    NAIVE: Probability
    STABLE: Probability
    ACTIVE: Probability
    HIGHLY_ACTIVE: Probability


class TransitionMatrix(_StateKeyed, kw_only=True):
    """The base (untreated) transition matrix, one row per current state."""

    NAIVE: TransitionRow
    STABLE: TransitionRow
    ACTIVE: TransitionRow
    HIGHLY_ACTIVE: TransitionRow


class Multipliers(_StateKeyed, kw_only=True):
    """Factors applied to one row of the matrix after an injection (missing states: 1.0)."""

    NAIVE: NonNegative = 1.0
    STABLE: NonNegative = 1.0
    ACTIVE: NonNegative = 1.0
    HIGHLY_ACTIVE: NonNegative = 1.0


class TreatmentEffect(_Schema, kw_only=True):
    """How an injection at the previous visit changes the transitions out of one state."""

    multipliers: Multipliers = Multipliers()


class TreatmentEffects(_StateKeyed, kw_only=True):
    """Treatment effect per current state; a state left out is unaffected by treatment."""

    NAIVE: TreatmentEffect = TreatmentEffect()
    STABLE: TreatmentEffect = TreatmentEffect()
    ACTIVE: TreatmentEffect = TreatmentEffect()
    HIGHLY_ACTIVE: TreatmentEffect = TreatmentEffect()


class VisionChange(_Schema, kw_only=True):
    """Normal distribution of the change in letters at one visit (rounded before use)."""

    mean: float
    std: NonNegative


class VisionChangeModel(_Schema, kw_only=True):
    """Vision change per (state at the visit, treated at the visit) scenario."""

    naive_treated: VisionChange
    naive_untreated: VisionChange
    stable_treated: VisionChange
    stable_untreated: VisionChange
    active_treated: VisionChange
    active_untreated: VisionChange
    highly_active_treated: VisionChange
    highly_active_untreated: VisionChange


class BaselineVision(_Schema, kw_only=True):
    """Vision at enrollment: Normal(mean, std) in letters, rounded and clipped to [min, max]."""

    mean: float
    std: NonNegative
    min: Letters
    max: Letters


class DiscontinuationRules(_Schema, kw_only=True):
    """Rules checked at every visit after enrollment, first match wins.

    Parameters
    ----------
    poor_vision_threshold
        Letters; vision strictly below it makes ``poor_vision_probability`` apply.
    high_injection_count
        Injections so far; strictly more makes ``high_injection_probability`` apply.
    long_treatment_months
        Months since enrollment (30.4375 days each); strictly more makes
        ``long_treatment_probability`` apply.
    discontinuation_types
        Free labels kept for reference; recorded reasons are the rule names.
    """

    poor_vision_threshold: Letters
    poor_vision_probability: Probability
    high_injection_count: Annotated[int, Meta(ge=0)]
    high_injection_probability: Probability
    long_treatment_months: NonNegative
    long_treatment_probability: Probability
    discontinuation_types: list[str] = []


class Protocol(_Schema, kw_only=True):
    """A validated treatment protocol.

    ``extras`` holds keys the schema does not know, by field path, so that nothing in the
    user's file is silently dropped (they are reported once as a warning).
    """

    name: Annotated[str, Meta(min_length=1)]
    version: str = "1.0"
    description: str = ""
    author: str = ""
    created_date: str = ""
    protocol_type: ProtocolType
    min_interval_days: IntervalDays
    max_interval_days: IntervalDays
    extension_days: StepDays = 0
    shortening_days: StepDays = 0
    loading_doses: Annotated[int, Meta(ge=0, le=100)] = 0
    disease_transitions: TransitionMatrix
    treatment_effect_on_transitions: TreatmentEffects = TreatmentEffects()
    vision_change_model: VisionChangeModel
    baseline_vision: BaselineVision
    discontinuation_rules: DiscontinuationRules
    extras: dict[str, Any] = {}
